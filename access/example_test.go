package access_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/outpost-cdn/outpost/access"
)

// A host whose /premium/ paths need a signed URL and whose images may only
// be embedded by its own site; a reload stores a new Policy in the Gate.
func ExamplePolicy_Admit() {
	key := []byte("an-example-key-of-32-bytes-long!")
	p, err := access.New(access.Config{
		Host:       "media.example.com",
		SignedURLs: access.SignedURLs{Keys: [][]byte{key}, Paths: []string{"/premium/"}},
		Hotlink:    access.Hotlink{Referers: []string{"example.com", "*.example.com"}},
	})
	if err != nil {
		panic(err)
	}
	gate := access.NewGate(p) // an edge.Host's Admit is gate.Admit

	signed, _ := access.Sign("https://media.example.com/premium/film.mp4", key, access.Token{Expires: time.Now().Add(time.Hour)})
	for _, u := range []string{signed, "https://media.example.com/premium/film.mp4"} {
		rec := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodGet, u, nil)
		r.Header.Set("Referer", "https://www.example.com/watch")
		if _, ok := gate.Admit(rec, r); ok {
			fmt.Println("admitted")
		} else {
			fmt.Println(rec.Code)
		}
	}
	// Output:
	// admitted
	// 403
}
