package main

import (
	"context"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"time"

	"github.com/chatd/chatd/degrade"
)

// defaultQuietGC is how often chatd checks whether it has been quiet
// enough to collect by itself (--quiet-gc).
const defaultQuietGC = 10 * time.Second

// quietGCMax is the longest wait between two collections once they stop
// giving memory back; Go itself forces one every 2 minutes.
const quietGCMax = 2 * time.Minute

// quietCPU is the share of one core under which a node counts as idle
// over a check's interval.
const quietCPU = 0.25

// leanGCPercent is the collector's target (GOGC) on an idle node: a
// collection when the heap has grown by a quarter over what was live
// after the last, instead of Go's default of doubling.
const leanGCPercent = 25

// startGCPercent is the collector's target (GOGC) over a restarted
// node's first check interval, when GOGC is not set. A node that starts
// over an engine holding users (core.Hub.UsersAtStart) had clients, and
// they are coming back: its heap grows from a few megabytes to hundreds
// in a second or two. At Go's default of 100 that growth costs a
// collection at each doubling, and each collection scans every
// goroutine's stack, 10,000 and more by the end; at 400 it costs a third
// as many. Measured in the reconnect storm (10,000 WebSocket clients
// after kill -9, docs/PERFORMANCE.md): 167-197 µs of the node a client
// back against 201-249 µs, at about a quarter more memory until the
// first check (RSS 362-369 MB against 285-317 MB at the storm's end).
// Not for a node that starts empty: 10,000 clients connecting to one
// over 5.5 s left it at 16.3 KiB a connection 30 s later against 13.4
// KiB, the heap's wider growth leaving more of it fragmented.
const startGCPercent = 400

// quietGC collects when the node has been quiet, so that memory taken by
// a burst goes back to the system soon after it, and keeps the heap
// lean while the node idles.
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
// A node of held polls is never that quiet: its clients re-poll every
// 20-25 s, and each new poll allocates enough that the node collects by
// itself, so the heap stays near Go's goal, twice what is live, and the
// memory of each burst of re-polls stays with the process. Yet it uses
// a few hundredths of a core (10,000 held polls: 0.01 between bursts).
//
// So every interval quietGC looks at the CPU the process used since the
// last check. Under quietCPU of a core the node is idle: the collector
// runs at leanGCPercent instead of the configured target (a quarter of
// the headroom, at up to four times the collections, of a node with CPU
// to spare), and quietGC runs a collection and returns what it freed to
// the system at once (debug.FreeOSMemory): Go's background scavenger,
// paced to about 1% of the CPU, still held 138 MB of free heap 50 s
// after a burst of 5,000 polls. When a collection gives back less than
// 1% of what the heap and stacks hold, the next one waits twice as long,
// up to quietGCMax. A busy node gets its configured target back at the
// next check and is never collected by quietGC. Where the process's CPU
// time is unknown, a node is quiet when it ran no collection of its own
// since the last check, and the target is never made lean. Nothing
// changes the target when GOGC is set in the environment.
//
// On a restarted node (newQuietGC's restarted), the target is
// startGCPercent from start until the first check, which gives the
// configured target back, whatever it finds.
type quietGC struct {
	every, max time.Duration                // Static after construction.
	cycles     func() uint64                // collections completed so far
	held       func() uint64                // bytes of heap in use and stacks
	collect    func()                       // runs a collection and returns the freed memory to the system
	cpu        func() (time.Duration, bool) // CPU time used so far, if known (off unix, quiet is judged by collections alone)
	setPercent func(int) int                // debug.SetGCPercent; nil: the target is left alone
	widen      bool                         // start at startGCPercent; cleared once it has

	seen    uint64        // cycles at the last check; owned by run
	used    time.Duration // cpu at the last check; owned by run
	gap     time.Duration // wait between collections now, every to max; owned by run
	due     time.Duration // left until the next collection; owned by run
	normal  int           // the configured target, while lean; owned by run
	leaning bool          // the target is leanGCPercent; owned by run
	started bool          // the target is startGCPercent; owned by run
}

func newQuietGC(every time.Duration, restarted bool) *quietGC {
	q := &quietGC{every: every, max: max(every, quietGCMax), collect: debug.FreeOSMemory, cpu: degrade.ProcessCPU, widen: restarted}
	if _, set := os.LookupEnv("GOGC"); !set {
		q.setPercent = debug.SetGCPercent
	}
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

// start records where the first check counts from.
func (q *quietGC) start() {
	q.seen = q.cycles()
	q.used, _ = q.cpu()
	q.gap, q.due = q.every, q.every
	if q.widen && q.setPercent != nil && !q.leaning && !q.started {
		q.normal = q.setPercent(startGCPercent)
		q.started, q.widen = true, false // once
	}
}

// step is one check, elapsed after the last (or start).
func (q *quietGC) step(elapsed time.Duration) {
	if q.started {
		q.setPercent(q.normal)
		q.started = false
	}
	n := q.cycles()
	own := n != q.seen
	q.seen = n
	used, known := q.cpu()
	idle := !own
	if known {
		idle = elapsed > 0 && float64(used-q.used) < quietCPU*float64(elapsed)
		q.used = used
	}
	if known && q.setPercent != nil {
		q.lean(idle)
	}
	if !idle {
		q.gap, q.due = q.every, q.every // busy: the interval starts over
		return
	}
	if q.due -= elapsed; q.due > 0 {
		return
	}
	before := q.held()
	q.collect()
	q.seen = q.cycles()
	if after := q.held(); after+before/100 > before {
		q.gap = min(2*q.gap, q.max) // little came back: collect less often
	} else {
		q.gap = q.every
	}
	q.due = q.gap
}

// lean sets the collector's target for an idle node or a busy one.
func (q *quietGC) lean(idle bool) {
	switch {
	case idle && !q.leaning:
		q.normal = q.setPercent(leanGCPercent)
		q.leaning = true
	case !idle && q.leaning:
		q.setPercent(q.normal)
		q.leaning = false
	}
}

// run checks every interval until ctx ends, and gives the collector its
// configured target back then.
func (q *quietGC) run(ctx context.Context) {
	q.start()
	t := time.NewTicker(q.every)
	defer t.Stop()
	defer func() {
		if q.leaning || q.started {
			q.setPercent(q.normal)
		}
	}()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			q.step(now.Sub(last))
			last = now
		}
	}
}
