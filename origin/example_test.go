package origin_test

import (
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/outpost-cdn/outpost/origin"
)

func ExampleNew() {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s", r.Host, r.URL)
	}))
	defer backend.Close()

	pool, err := origin.New(origin.Config{
		Name:       "static",
		Origins:    []origin.Server{{URL: backend.URL, Weight: 2}},
		Balance:    origin.LeastRequests,
		PathPrefix: "/assets",
		Health:     origin.HealthCheck{Path: "/", Interval: 5 * time.Second},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()

	// The edge asks for the cache URL; the pool finds a server for it.
	req, _ := http.NewRequest(http.MethodGet, "http://static.example.com/img/a.png?w=200", nil)
	resp, err := pool.RoundTrip(req)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.StatusCode, string(body))
	fmt.Println("up:", pool.Servers()[0].Up)
	// Output:
	// 200 static.example.com /assets/img/a.png?w=200
	// up: true
}

func ExampleNewShield() {
	shieldNode := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "from the shield, for %s", r.Host)
	}))
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "from the origin")
	}))
	defer backend.Close()

	pool, err := origin.New(origin.Config{Origins: []origin.Server{{URL: backend.URL}}})
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	shield, err := origin.NewShield(origin.ShieldConfig{
		Config: origin.Config{
			Origins:  []origin.Server{{URL: shieldNode.URL}},
			Ejection: origin.Ejection{Failures: 1},
		},
		Origin: pool,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer shield.Close()

	get := func() {
		req, _ := http.NewRequest(http.MethodGet, "http://static.example.com/v/1.mp4", nil)
		resp, err := shield.RoundTrip(req)
		if err != nil {
			log.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		fmt.Println(string(body))
	}
	get()
	shieldNode.Close() // the only parent goes down: the origin takes over
	get()
	get()
	// Output:
	// from the shield, for static.example.com
	// from the origin
	// from the origin
}
