package main

import "strings"

// stackStart is the runtime setting chatd runs with unless the
// environment's GODEBUG names adaptivestackstart itself.
//
// Go starts each goroutine with a stack the size of the average its
// goroutines used at the last collection (GODEBUG adaptivestackstart=1, the
// default), rounded up to a power of two. On a node that has just
// accepted thousands of connections the average is that of goroutines in
// the middle of an upgrade and a join, so a WebSocket reader started then
// gets 4 KiB, although parked in its read it uses 1.1 KiB; and the runtime
// never shrinks a stack below 4 KiB once it is that size, since it shrinks
// only stacks less than a quarter used, counting 800 bytes of guard. With
// fixed 2 KiB starting stacks (adaptivestackstart=0) each idle WebSocket
// connection costs 2 KiB less: 10,000 idle clients took 13.5 KiB of RSS
// each against 17.2 (docs/PERFORMANCE.md, "Idle"). Goroutines that go
// deeper grow by copying, as they did before Go 1.19.
const stackStart = "adaptivestackstart=0"

// withStackStart returns the GODEBUG value chatd should run with, given
// the environment's, and whether it differs: an operator's explicit
// adaptivestackstart stands; otherwise stackStart is added.
func withStackStart(godebug string) (string, bool) {
	for _, kv := range strings.Split(godebug, ",") {
		if k, _, _ := strings.Cut(kv, "="); strings.TrimSpace(k) == "adaptivestackstart" {
			return godebug, false
		}
	}
	if godebug == "" {
		return stackStart, true
	}
	return godebug + "," + stackStart, true
}
