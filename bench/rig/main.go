// Command rig is the Go half of Outpost's loopback benchmark (bench/run.sh):
// the origin, the bare net/http ceiling, and the small clients and
// bookkeeping the script needs. Standard library only.
//
//	rig origin  -listen ADDR                      the origin every cache fills from
//	rig bare    -listen ADDR [-tls ADDR -certs DIR] the same bytes from memory, no cache (the ceiling)
//	rig files   -dir DIR [-many N]                writes the objects as files (nginx static)
//	rig certs   -dir DIR                          ECDSA P-256 and RSA-2048 pairs for 127.0.0.1, a ticket key
//	rig warm    -base URL [-many N] [-origin URL] fetches every object twice; prints the 2nd pass's origin fetches
//	rig wait    -url URL [-timeout 30s]           waits for a 200 (over TLS without verifying)
//	rig pids    PID...                            the PIDs and their descendants
//	rig measure [flags] -- CMD ARGS...            runs a load generator, appends one JSON line of results
//	rig coalesce -url URL [-n 200]                n simultaneous GETs for one cold URL (run under measure)
//	rig handshake -addr ADDR [-c 32] [-d 10s] [-resume] TLS 1.3 connections, one request each (run under measure)
//	rig summary -runs FILE                        the result tables
//
// Objects are GET /obj/<size>/<name> (size 1k, 64k, 1m or bytes), with
// Cache-Control: public, max-age=3600; /slow/<ms>/<size>/<name> answers after
// ms milliseconds. GET /__count on the origin reports how many requests it
// has served (?path= for one path).
package main

import (
	"fmt"
	"os"
)

func main() {
	cmds := map[string]func([]string) error{
		"origin":    cmdOrigin,
		"bare":      cmdBare,
		"files":     cmdFiles,
		"certs":     cmdCerts,
		"warm":      cmdWarm,
		"wait":      cmdWait,
		"pids":      cmdPIDs,
		"measure":   cmdMeasure,
		"coalesce":  cmdCoalesce,
		"handshake": cmdHandshake,
		"summary":   cmdSummary,
	}
	if len(os.Args) < 2 || cmds[os.Args[1]] == nil {
		fmt.Fprintln(os.Stderr, "usage: rig origin|bare|files|certs|warm|wait|pids|measure|coalesce|handshake|summary [flags] (see the comment in bench/rig/main.go)")
		os.Exit(2)
	}
	if err := cmds[os.Args[1]](os.Args[2:]); err != nil {
		fmt.Fprintf(os.Stderr, "rig %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}
