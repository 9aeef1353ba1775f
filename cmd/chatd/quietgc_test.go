package main

import (
	"runtime"
	"testing"
	"time"
)

// fakeRuntime stands in for the collector in quietGC's policy tests: each
// collection adds a cycle and takes freed bytes off held.
type fakeRuntime struct {
	cycles, held, freed uint64
	collections         int
}

func (f *fakeRuntime) quiet(every, max time.Duration) *quietGC {
	return &quietGC{every: every, max: max,
		cycles: func() uint64 { return f.cycles },
		held:   func() uint64 { return f.held },
		collect: func() {
			f.collections++
			f.cycles++
			f.held -= min(f.freed, f.held)
		}}
}

func TestQuietGCPolicy(t *testing.T) {
	const every, most = 10 * time.Second, 40 * time.Second
	f := &fakeRuntime{held: 1000, freed: 500}
	q := f.quiet(every, most)

	f.cycles = 3 // the node collected by itself since the last check
	if wait := q.step(every); wait != every || f.collections != 0 {
		t.Fatalf("after collections of its own: wait %v, %d forced; want %v, none", wait, f.collections, every)
	}
	if wait := q.step(every); wait != every || f.collections != 1 || f.held != 500 {
		t.Fatalf("quiet, half given back: wait %v, %d forced, held %d; want %v, 1, 500", wait, f.collections, f.held, every)
	}
	f.freed = 2 // under 1% of what is held
	want := []time.Duration{20 * time.Second, most, most}
	wait := every
	for i, w := range want {
		if wait = q.step(wait); wait != w || f.collections != 2+i {
			t.Fatalf("quiet, little given back, check %d: wait %v, %d forced; want %v, %d", i, wait, f.collections, w, 2+i)
		}
	}
	f.cycles += 5 // busy again: the interval starts over
	if wait = q.step(wait); wait != every || f.collections != 4 {
		t.Fatalf("busy again: wait %v, %d forced; want %v, 4", wait, f.collections, every)
	}
}

// TestQuietGCReadsTheRuntime: the real sources move as they should: a
// forced collection counts as a cycle, and held is the heap in use plus
// stacks, more than nothing.
func TestQuietGCReadsTheRuntime(t *testing.T) {
	q := newQuietGC(time.Second)
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
