package storage_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"

	"github.com/outpost-cdn/outpost/storage"
)

func ExampleNewTiered() {
	dir, err := os.MkdirTemp("", "outpost-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	mem, err := storage.NewMemory(storage.MemoryConfig{MaxBytes: 64 << 20})
	if err != nil {
		log.Fatal(err)
	}
	defer mem.Close()
	disk, err := storage.NewDisk(storage.DiskConfig{Dir: dir, MaxBytes: 1 << 30})
	if err != nil {
		log.Fatal(err)
	}
	defer disk.Close()
	cache, err := storage.NewTiered(mem, disk, storage.TieredConfig{})
	if err != nil {
		log.Fatal(err)
	}
	defer cache.Close()
	<-cache.Ready() // the admin /readyz answers 503 until here

	ctx := context.Background()
	body := "hello, edge"
	w, err := cache.Put(ctx, storage.Meta{Key: "k", URL: "http://example.com/", Status: 200, Size: int64(len(body))})
	if err != nil {
		log.Fatal(err)
	}
	defer w.Close()
	io.WriteString(w, body)
	if err := w.Commit(); err != nil {
		log.Fatal(err)
	}

	o, err := cache.Get(ctx, "k")
	if err != nil {
		log.Fatal(err)
	}
	defer o.Close()
	b, _ := io.ReadAll(io.NewSectionReader(o, 0, o.Meta().Size))
	fmt.Printf("%d %s\n", o.Meta().Status, b)
	// Output: 200 hello, edge
}
