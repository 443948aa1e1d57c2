//go:build race

package main

// raceEnabled: the race detector slows the tests' own clients several
// times over; the heaviest tests do fewer rounds under it.
const raceEnabled = true
