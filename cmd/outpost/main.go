// Command outpost is a CDN edge caching node: an HTTP reverse-proxy cache
// for static media, with a memory tier, coalesced misses, purges and an
// origin shield tier. Run `outpost demo` to see it work with no setup.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `Usage:
  outpost serve [--config FILE] [--listen ADDR] [--admin ADDR] [--origin URL]... [--parent URL]...
                [--memory SIZE] [--cache-dir DIR] [--disk SIZE] [--name NAME] [--log-format text|json]
  outpost purge [--admin URL] [--soft] (--url URL | --prefix URL | --tag TAG | --host HOST | --all)...
  outpost warm  [--admin URL] (URL... | --file FILE)
  outpost sign  URL [--ttl 1h] [--prefix P] [--ip ADDR] [--key-file FILE | --config FILE]
  outpost check [--config FILE] [serve's flags]
  outpost health [--admin URL] [--ready]
  outpost demo  [--listen ADDR]
  outpost version

Run "outpost COMMAND -h" for a command's flags.
`

// run executes one command and returns the process exit status: 0 on
// success, 2 for a bad flag or configuration value, 1 for other failures.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return cmdServe(ctx, args[1:], stderr)
	case "demo":
		return cmdDemo(ctx, args[1:], stdout, stderr)
	case "purge":
		return cmdPurge(ctx, args[1:], stdout, stderr)
	case "warm":
		return cmdWarm(ctx, args[1:], stdout, stderr)
	case "sign":
		return cmdSign(args[1:], stdout, stderr)
	case "check":
		return cmdCheck(args[1:], stdout, stderr)
	case "health":
		return cmdHealth(ctx, args[1:], stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, versionString())
		return 0
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "outpost: unknown command %q\n\n%s", args[0], usage)
	return 2
}

// cmdServe runs a node until ctx is done (SIGTERM or SIGINT).
func cmdServe(ctx context.Context, args []string, stderr io.Writer) int {
	f := newServeFlags("outpost serve", stderr)
	if err := f.fs.Parse(args); err != nil {
		return exitUsage(err)
	}
	if f.fs.NArg() > 0 {
		fmt.Fprintf(stderr, "outpost serve: unexpected argument %q\n", f.fs.Arg(0))
		return 2
	}
	s, err := f.resolve()
	if err != nil {
		fmt.Fprintf(stderr, "outpost serve: %v\n", err)
		return 2
	}
	log := newLogger(stderr, s.logFormat)
	n, err := newNode(s, log)
	if err != nil {
		fmt.Fprintf(stderr, "outpost serve: %v\n", err)
		return exitFor(err)
	}
	n.ops.resolve = f.resolve     // reloads read the same flags and file again
	defer handleSignals(ctx, n)() // SIGHUP reloads, SIGUSR1 reopens the access log (signals.go)
	gcCtx, stopGC := context.WithCancel(context.Background())
	gcDone := startGCTuner(gcCtx, n.mem.Stats())
	defer func() { stopGC(); <-gcDone }()
	if err := n.run(ctx); err != nil {
		log.Error("serve", "err", err)
		return 1
	}
	return 0
}

// exitUsage maps a flag parsing error: -h is a success.
func exitUsage(err error) int {
	if err == flagHelp {
		return 0
	}
	return 2
}

// exitFor returns 2 for configuration errors, 1 otherwise.
func exitFor(err error) int {
	if _, ok := err.(*configError); ok {
		return 2
	}
	return 1
}

func newLogger(w io.Writer, format string) *slog.Logger {
	opts := &slog.HandlerOptions{Level: slog.LevelInfo}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
