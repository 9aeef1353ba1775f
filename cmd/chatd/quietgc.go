package main

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// defaultQuietGC is how often chatd checks whether it has been quiet
// enough to collect by itself (--quiet-gc).
const defaultQuietGC = 10 * time.Second

// quietGCMax is the longest wait between two checks once collections
// stop giving memory back; Go itself forces one every 2 minutes.
const quietGCMax = 2 * time.Minute

// quietGC collects when the node has been quiet, so that memory taken by
// a burst goes back to the system soon after it.
//
// A goroutine's stack grows while it works (a WebSocket reader handling
// a join goes deep) and shrinks only at a collection, by half at a time.
// A node that has just accepted 10,000 connections and then idles
// allocates too little to trigger one, and Go forces one only every 2
// minutes. Measured with 10,000 idle WebSocket clients 30 s after they
// connected: stacks 135 MB (12 KB a goroutine), heap in use 149 MB with
// 80 MB more held but unused, RSS 406 MB. Three collections later:
// stacks 53 MB, heap in use 92 MB, RSS 205 MB (docs/PERFORMANCE.md).
//
// So every interval, if no collection ran since the last check (a busy
// node collects often by itself, and a forced collection would only add
// to its load), quietGC runs one and returns what it freed to the system
// at once (debug.FreeOSMemory): Go's background scavenger, paced to about
// 1% of the CPU, still held 138 MB of free heap 50 s after a burst of
// 5,000 polls. When a collection gives back less than 1% of what the
// heap and stacks hold, the next check waits twice as long, up to
// quietGCMax; a collection the node ran by itself starts the interval
// over.
type quietGC struct {
	every, max time.Duration // Static after construction.
	cycles     func() uint64 // collections completed so far
	held       func() uint64 // bytes of heap in use and stacks
	collect    func()        // runs a collection and returns the freed memory to the system

	seen uint64 // cycles at the last check; owned by run
}

func newQuietGC(every time.Duration) *quietGC {
	q := &quietGC{every: every, max: max(every, quietGCMax), collect: debug.FreeOSMemory}
	samples := []metrics.Sample{
		{Name: "/gc/cycles/total:gc-cycles"},
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/unused:bytes"},
		{Name: "/memory/classes/heap/stacks:bytes"},
	}
	read := func() []metrics.Sample { metrics.Read(samples); return samples }
	q.cycles = func() uint64 { return read()[0].Value.Uint64() }
	q.held = func() uint64 {
		s := read()
		return s[1].Value.Uint64() + s[2].Value.Uint64() + s[3].Value.Uint64()
	}
	return q
}

// step is one check, after a wait of wait; it returns the next wait.
func (q *quietGC) step(wait time.Duration) time.Duration {
	if n := q.cycles(); n != q.seen {
		q.seen = n // the node collected by itself: busy, or growing
		return q.every
	}
	before := q.held()
	q.collect()
	q.seen = q.cycles()
	if after := q.held(); after+before/100 > before {
		return min(2*wait, q.max) // little came back: check less often
	}
	return q.every
}

// run checks until ctx ends.
func (q *quietGC) run(ctx context.Context) {
	q.seen = q.cycles()
	wait := q.every
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		wait = q.step(wait)
		t.Reset(wait)
	}
}
