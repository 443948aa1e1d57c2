package purge_test

import (
	"context"
	"errors"
	"log"
	"time"

	"github.com/outpost-cdn/outpost/purge"
)

// A node joins the fleet's purge bus: it publishes the purges it accepts,
// applies everyone's, and reports ready once it has caught up. (This example
// needs a NATS server with JetStream, so it is compiled but not run.)
func ExampleNewBus() {
	var ix *purge.Index // the node's Index, from purge.New
	bus, err := purge.NewBus(purge.BusConfig{
		URL:   "nats://nats-1:4222",
		Node:  "edge-fra-1",
		Index: ix,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer bus.Close() // before ix.Close

	// /readyz waits for the purges the node missed while it was down.
	select {
	case <-bus.Ready():
	case <-time.After(time.Minute):
		log.Print("still replaying the fleet's purges")
	}

	// The admin handler takes the Bus as its Purger.
	h, err := purge.NewHandler(purge.HandlerConfig{Purger: bus})
	if err != nil {
		log.Fatal(err)
	}
	_ = h

	// A purge is in force here when Purge returns, even with the bus down.
	rec, err := bus.Purge(context.Background(), purge.Request{Tags: []string{"product-42"}})
	if pe, ok := errors.AsType[*purge.PublishError](err); ok {
		log.Printf("purge %s not yet on the bus (queued: %v): %v", rec.ID, pe.Queued, pe.Err)
	} else if err != nil {
		log.Fatal(err)
	}
}
