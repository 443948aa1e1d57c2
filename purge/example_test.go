package purge_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/outpost-cdn/outpost/purge"
	"github.com/outpost-cdn/outpost/storage"
)

func Example() {
	tier, err := storage.NewMemory(storage.MemoryConfig{})
	if err != nil {
		panic(err)
	}
	defer tier.Close()
	ix, err := purge.New(purge.Config{
		Canonicalize: func(raw string) (string, error) { // the edge's, in cmd
			u, err := url.Parse(raw)
			if err != nil {
				return "", err
			}
			u.Host = strings.ToLower(u.Host)
			return u.String(), nil
		},
		Tier: tier,
	})
	if err != nil {
		panic(err)
	}
	defer ix.Close()
	// The sweeper runs until its context is done; stop it before Close.
	ctx, cancel := context.WithCancel(context.Background())
	swept := make(chan error, 1)
	go func() { swept <- ix.Run(ctx) }()
	defer func() { cancel(); <-swept }()

	// The edge stores a response with its surrogate keys.
	origin := http.Header{"Surrogate-Key": {"home product-42"}}
	m := &storage.Meta{
		Key:          "k1",
		URL:          "http://static.example.com/img/a.png",
		Tags:         purge.ParseTags(origin),
		ResponseTime: time.Now().Add(-time.Minute),
	}

	// A deploy purges one product, softly.
	rec, err := ix.Purge(ctx, purge.Request{Tags: []string{"product-42"}, Soft: true})
	if err != nil {
		panic(err)
	}
	fmt.Println("bans:", len(rec.Bans))

	// The next lookup of the object finds it banned: stale, not absent.
	_, soft, banned := ix.Check(m)
	fmt.Println("banned:", banned, "soft:", soft)

	// A copy fetched after the purge is not affected.
	fresh := *m
	fresh.ResponseTime = time.Now()
	_, _, banned = ix.Check(&fresh)
	fmt.Println("fresh copy banned:", banned)
	// Output:
	// bans: 1
	// banned: true soft: true
	// fresh copy banned: false
}

func ExampleIndex_Newest() {
	tier, err := storage.NewMemory(storage.MemoryConfig{})
	if err != nil {
		panic(err)
	}
	defer tier.Close()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	ix, err := purge.New(purge.Config{
		Canonicalize: func(raw string) (string, error) { return raw, nil },
		Tier:         tier,
		Now:          func() time.Time { return now },
	})
	if err != nil {
		panic(err)
	}
	defer ix.Close()
	ctx := context.Background()
	if _, err := ix.Purge(ctx, purge.Request{Prefixes: []string{"http://static.example.com/img/"}}); err != nil {
		panic(err)
	}

	// A minute and a half later the edge refetches a purged object. Its
	// shield may not have applied the purge yet, so the edge asks it for a
	// copy no older than the purge.
	now = now.Add(90 * time.Second)
	if at, ok := ix.Newest("http://static.example.com/img/a.png"); ok {
		fmt.Printf("Cache-Control: max-age=%d\n", int(now.Sub(at).Seconds()))
	}
	_, ok := ix.Newest("http://static.example.com/css/site.css")
	fmt.Println("other path purged:", ok)
	// Output:
	// Cache-Control: max-age=90
	// other path purged: false
}
