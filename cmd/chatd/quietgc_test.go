package main

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"
)

// fakeRuntime stands in for the collector and the process's CPU time in
// quietGC's policy tests: each collection adds a cycle and takes freed
// bytes off held; percent is the collector's target.
type fakeRuntime struct {
	cycles, held, freed uint64
	collections         int
	cpu                 time.Duration
	cpuKnown            bool
	percent             int
	fresh               bool // a node that started empty: no start target
}

func (f *fakeRuntime) quiet(every, max time.Duration) *quietGC {
	f.percent = 100
	q := &quietGC{every: every, max: max, widen: !f.fresh,
		cycles: func() uint64 { return f.cycles },
		held:   func() uint64 { return f.held },
		collect: func() {
			f.collections++
			f.cycles++
			f.held -= min(f.freed, f.held)
		},
		cpu: func() (time.Duration, bool) { return f.cpu, f.cpuKnown },
		setPercent: func(p int) int {
			old := f.percent
			f.percent = p
			return old
		}}
	q.start()
	return q
}

// check is one step after every, with cpu of CPU time used in it; it
// fails unless the step left collections forced in all and the target
// at percent.
func (f *fakeRuntime) check(t *testing.T, q *quietGC, what string, cpu time.Duration, collections, percent int) {
	t.Helper()
	f.cpu += cpu
	q.step(q.every)
	if f.collections != collections || f.percent != percent {
		t.Fatalf("%s: %d collections forced, GOGC %d; want %d, %d", what, f.collections, f.percent, collections, percent)
	}
}

// TestQuietGCPolicy: with the CPU time known, a node under a quarter of
// a core is idle whether or not it collected by itself: the target goes
// lean and a collection is forced, then less often while collections
// give little back; a busy node gets its target back and is not
// collected, and the next idle check collects at once.
func TestQuietGCPolicy(t *testing.T) {
	const every, most = 10 * time.Second, 40 * time.Second
	f := &fakeRuntime{held: 1000, freed: 500, cpuKnown: true}
	q := f.quiet(every, most)
	if f.percent != startGCPercent {
		t.Fatalf("GOGC %d from the start, want %d", f.percent, startGCPercent)
	}

	f.check(t, q, "busy", 3*time.Second, 0, 100)
	f.cycles += 3 // re-polls made the node collect by itself, at 0.1 of a core
	f.check(t, q, "idle, collections of its own", time.Second, 1, leanGCPercent)
	if f.held != 500 {
		t.Fatalf("held %d after the collection, want 500", f.held)
	}
	f.freed = 2 // under 1% of what is held: every 20 s, then 40 s
	for i, want := range []int{2, 2, 3, 3, 3, 3, 4} {
		f.check(t, q, fmt.Sprintf("idle, little given back, check %d", i), 0, want, leanGCPercent)
	}
	f.check(t, q, "busy again", 5*time.Second, 4, 100)
	f.check(t, q, "idle again", 0, 5, leanGCPercent)
}

// TestQuietGCWithoutCPU: where the CPU time is unknown, a node is quiet
// when it did not collect by itself since the last check, and the
// target is never changed.
func TestQuietGCWithoutCPU(t *testing.T) {
	const every, most = 10 * time.Second, 40 * time.Second
	f := &fakeRuntime{held: 1000, freed: 500}
	q := f.quiet(every, most)
	if f.percent != startGCPercent {
		t.Fatalf("GOGC %d from the start, want %d", f.percent, startGCPercent)
	}

	f.cycles = 3 // the node collected by itself since the last check
	f.check(t, q, "collections of its own", 0, 0, 100)
	f.check(t, q, "quiet, half given back", 0, 1, 100)
	f.freed = 2
	for i, want := range []int{2, 2, 3, 3, 3, 3, 4} {
		f.check(t, q, fmt.Sprintf("quiet, little given back, check %d", i), 0, want, 100)
	}
	f.cycles += 5 // busy again: the interval starts over
	f.check(t, q, "busy again", 0, 4, 100)
	f.check(t, q, "quiet again", 0, 5, 100)
}

// TestQuietGCLeavesGOGC: with GOGC in the environment the target is
// left alone, and run gives a lean target back when it ends.
func TestQuietGCLeavesGOGC(t *testing.T) {
	t.Setenv("GOGC", "100")
	if q := newQuietGC(time.Second, true); q.setPercent != nil {
		t.Fatal("GOGC set, yet quietGC would change the target")
	}
	f := &fakeRuntime{held: 1000, freed: 500, cpuKnown: true}
	q := f.quiet(time.Hour, time.Hour)
	f.check(t, q, "idle", 0, 1, leanGCPercent)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	q.run(ctx)
	if f.percent != 100 {
		t.Fatalf("GOGC %d after run ended, want 100", f.percent)
	}
}

// TestQuietGCStartEnds: a restarted node's start target goes back to
// the configured one at the first check, idle or not (an idle one then
// goes lean), and when run ends before any check; a node that started
// empty never has it.
func TestQuietGCStartEnds(t *testing.T) {
	fresh := &fakeRuntime{held: 1000, freed: 500, cpuKnown: true, fresh: true}
	q0 := fresh.quiet(time.Hour, time.Hour)
	if fresh.percent != 100 {
		t.Fatalf("a node that started empty: GOGC %d from the start, want 100", fresh.percent)
	}
	fresh.check(t, q0, "busy", 2*time.Hour, 0, 100)

	f := &fakeRuntime{held: 1000, freed: 500, cpuKnown: true}
	q := f.quiet(time.Hour, time.Hour)
	f.check(t, q, "idle at the first check", 0, 1, leanGCPercent)
	f.check(t, q, "busy", 2*time.Hour, 1, 100)

	f = &fakeRuntime{held: 1000, freed: 500, cpuKnown: true}
	q = f.quiet(time.Hour, time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	q.run(ctx)
	if f.percent != 100 {
		t.Fatalf("GOGC %d after run ended before a check, want 100", f.percent)
	}
}

// TestQuietGCReadsTheRuntime: the real sources move as they should: a
// forced collection counts as a cycle, and held is the heap in use plus
// stacks, more than nothing.
func TestQuietGCReadsTheRuntime(t *testing.T) {
	q := newQuietGC(time.Second, false)
	before := q.cycles()
	runtime.GC()
	if after := q.cycles(); after <= before {
		t.Fatalf("cycles %d before runtime.GC, %d after", before, after)
	}
	if h := q.held(); h == 0 {
		t.Fatal("held = 0")
	}
	if q.max != quietGCMax {
		t.Fatalf("max = %v, want %v", q.max, quietGCMax)
	}
}

// TestQuietGCFlag: --quiet-gc defaults to defaultQuietGC, and the
// environment and the flag set it; 0 turns it off.
func TestQuietGCFlag(t *testing.T) {
	for _, c := range []struct {
		args []string
		env  string
		want time.Duration
	}{
		{nil, "", defaultQuietGC},
		{nil, "30s", 30 * time.Second},
		{[]string{"--quiet-gc", "0"}, "30s", 0},
	} {
		m := NewMain()
		if err := m.ParseFlags(c.args, oneEnv("CHAT_QUIET_GC", c.env)); err != nil {
			t.Fatal(err)
		}
		if got := m.Config.QuietGC; got != c.want {
			t.Errorf("%v with CHAT_QUIET_GC=%q: %v, want %v", c.args, c.env, got, c.want)
		}
	}
}
