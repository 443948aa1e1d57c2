package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

// handleSignals reloads the configuration on SIGHUP and reopens the access
// log on SIGUSR1 until ctx is done or the returned stop is called; stop
// waits for a reload in progress.
func handleSignals(ctx context.Context, n *node) (stop func()) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGHUP, syscall.SIGUSR1)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case s := <-sig:
				switch s {
				case syscall.SIGHUP:
					n.log.Info("SIGHUP: reloading the configuration")
					n.reload() // logs what it did or why it refused
				case syscall.SIGUSR1:
					n.reopenLogs()
				}
			}
		}
	}()
	return func() {
		signal.Stop(sig)
		cancel()
		<-done
	}
}
