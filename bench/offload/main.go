// Command offload measures how much traffic an HTTP cache keeps from its
// origin, on synthetic CDN traces, and what memory it takes to do so.
//
//	offload gen    -kind zipf|ohw|shift [-requests N] [-objects N] ... > trace.txt
//	offload sim    -trace trace.txt -budget 64MiB [-policies lru,belady-size,belady,outpost]
//	offload replay -trace trace.txt -target 'name=command' ...
//	offload all    -out DIR -budgets 64MiB,256MiB -outpost bin/outpost [-disk 64MiB]
//
// See README.md beside this file.
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: offload gen|sim|replay|all [flags] (see bench/offload/README.md)")
		os.Exit(2)
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "gen":
		err = runGen(args)
	case "sim":
		err = runSim(args)
	case "replay":
		err = runReplay(args)
	case "all":
		err = runAll(args)
	default:
		err = fmt.Errorf("unknown command %q: want gen, sim, replay or all", cmd)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "offload:", err)
		os.Exit(1)
	}
}
