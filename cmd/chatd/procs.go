package main

import "runtime"

// minProcs is the fewest Go processors (Ps) chatd runs with.
//
// bbolt commits with fdatasync, a blocking system call that takes a few
// milliseconds on a disk. On a node with one CPU (a one-core container,
// or the load tests' server pinned to one core) Go runs one P, and the
// goroutine in fdatasync keeps that P until the runtime's monitor takes it
// back, which it does only after a tick that grows to 10 ms while the
// process looks idle. Meanwhile nothing else runs: no accept, no read, no
// write. So each commit stalled the whole node for about as long as the
// disk took. Measured with 10k WebSocket clients connecting on one core
// (two commits per new user): 14.8-18.6 s with one P, 4.6-6.8 s with two,
// the CPU mostly idle in both; and a restarted node under a reconnect
// storm answered /readyz after 15 s with one P, 1.2 s with two.
//
// A second P lets the network go on while the writer waits on the disk.
// On one core it is not free: an idle P looks for work before it sleeps,
// and the two threads take turns, which cost 0.1-0.2 of the core under a
// CPU-bound broadcast (docs/PERFORMANCE.md). GOMAXPROCS=1 in the
// environment gives that back.
const minProcs = 2

// spareProcs returns the GOMAXPROCS chatd should run with, given the
// runtime's current value and the GOMAXPROCS environment variable: an
// operator's explicit setting stands; otherwise at least minProcs.
func spareProcs(current int, env string) int {
	if env != "" || current >= minProcs {
		return current
	}
	return minProcs
}

// ensureProcs applies spareProcs and returns the GOMAXPROCS in effect.
func ensureProcs(env string) int {
	cur := runtime.GOMAXPROCS(0)
	if n := spareProcs(cur, env); n != cur {
		runtime.GOMAXPROCS(n)
	}
	return runtime.GOMAXPROCS(0)
}
