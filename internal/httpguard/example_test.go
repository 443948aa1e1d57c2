package httpguard_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"

	"github.com/outpost-cdn/outpost/internal/httpguard"
)

// A server behind a Guard: the listener's connections are checked, the
// handler answers what the Guard refused.
func Example() {
	g, err := httpguard.New(httpguard.Config{})
	if err != nil {
		panic(err)
	}
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") })
	srv := &http.Server{Handler: g.Handler(app), ConnContext: g.ConnContext, MaxHeaderBytes: g.MaxHead() + 4096}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go srv.Serve(g.Listener(ln))
	defer srv.Close()

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		panic(err)
	}
	defer c.Close()
	// Content-Length beside Transfer-Encoding: what follows the body
	// would be a second request to some servers.
	io.WriteString(c, "POST / HTTP/1.1\r\nHost: a.example\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n"+
		"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a.example\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		panic(err)
	}
	fmt.Println(resp.Status, "close:", resp.Close)
	// Output: 400 Bad Request close: true
}
