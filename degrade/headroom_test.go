package degrade

import (
	"math"
	"sync/atomic"
	"testing"
	"time"
)

// headroomRig is a controller with one latency signal over a settable
// reading and a settable Busy.
type headroomRig struct {
	clk  *clock
	load atomic.Int64
	busy atomic.Uint64 // float64 bits
	c    *Controller
}

// rigOpts varies a headroomRig: whether its signal is marked Headroom,
// Config.ProbeBusy, the breaker timeout (real time: a test that looks at
// a breaker just reopened needs one longer than a slow machine's pause
// between two statements; 0: 20 ms), and no Busy reader at all.
type rigOpts struct {
	marked    bool
	probeBusy float64
	timeout   time.Duration
	noBusy    bool
}

func newHeadroomRig(t *testing.T, marked bool, probeBusy float64) *headroomRig {
	return newRig(t, rigOpts{marked: marked, probeBusy: probeBusy})
}

// newRig returns a rig whose breaker has tripped at busy 0.9 and gone
// half-open with the reading back under its threshold.
func newRig(t *testing.T, o rigOpts) *headroomRig {
	t.Helper()
	if o.timeout == 0 {
		o.timeout = 20 * time.Millisecond
	}
	r := &headroomRig{clk: &clock{now: time.Unix(1000, 0)}}
	busy := func() float64 { return math.Float64frombits(r.busy.Load()) }
	if o.noBusy {
		busy = nil
	}
	r.c = New(Config{Now: r.clk.Now, TripAfter: 1, ProbeReadings: 2, BreakerTimeout: o.timeout,
		StepDown: time.Second, ProbeBusy: o.probeBusy, ProbeWait: time.Minute, Busy: busy,
		Signals: []Signal{{Name: "delivery_latency", Threshold: 1, Relief: LevelNoReceipts, Headroom: o.marked,
			Read: func() float64 { return float64(r.load.Load()) }}}})
	r.setBusy(0.9)
	r.load.Store(5)
	r.step()
	if r.c.Level() != LevelNoReceipts {
		t.Fatalf("level after the trip = %d, want 1", r.c.Level())
	}
	r.load.Store(0) // the relief relieves
	waitHalfOpen(t, r.c)
	return r
}

func (r *headroomRig) setBusy(f float64) { r.busy.Store(math.Float64bits(f)) }

// step advances the controller's clock a tick and steps.
func (r *headroomRig) step() {
	r.clk.Add(time.Second)
	r.c.Step()
}

func TestProbeWaitsForHeadroom(t *testing.T) {
	r := newHeadroomRig(t, true, 0)
	for i := range 30 {
		r.step()
		if got := r.c.Level(); got != LevelNoReceipts {
			t.Fatalf("level at busy 0.9, reading %d after half-open = %d, want 1 (probe held)", i, got)
		}
	}
	if b := r.c.Breakers()[0]; !b.Held || b.State != "half-open" {
		t.Fatalf("breaker while held = %+v, want held and half-open", b)
	}
	r.setBusy(0.49)
	r.step()
	if got := r.c.Level(); got != LevelNormal {
		t.Fatalf("level at busy 0.49 = %d, want 0 (probe begun)", got)
	}
	if r.c.Breakers()[0].Held {
		t.Fatal("still held after the probe began")
	}
	// The probe's own work makes the node busy again: that does not hold
	// it, and its good readings close the breaker.
	r.setBusy(0.95)
	r.step()
	if got, s := r.c.Level(), r.c.Breakers()[0].State; got != LevelNormal || s != "closed" {
		t.Fatalf("after the probe's readings: level %d, state %s; want 0, closed", got, s)
	}
}

func TestProbeWaitIsBounded(t *testing.T) {
	r := newHeadroomRig(t, true, 0)
	steps := 0
	for r.c.Level() != LevelNormal {
		if steps++; steps > 61 {
			t.Fatalf("probe still held after %d readings over a ProbeWait of a minute", steps)
		}
		r.step()
	}
	if steps < 60 {
		t.Fatalf("probe began after %d readings at busy 0.9, want it held for the minute", steps)
	}
}

func TestProbeHeldWhileOver(t *testing.T) {
	r := newHeadroomRig(t, true, 0)
	r.setBusy(0.1)
	r.load.Store(5) // over at the relieved level, on a node with headroom
	for i := range 10 {
		r.step()
		if b := r.c.Breakers()[0]; b.State != "half-open" || !b.Held || r.c.Level() != LevelNoReceipts {
			t.Fatalf("reading %d over the threshold: breaker %+v at level %d, want held at level 1", i, b, r.c.Level())
		}
	}
	r.load.Store(0) // the last deliveries' average has gone: the probe begins at once
	r.step()
	if got := r.c.Level(); got != LevelNormal {
		t.Fatalf("level once under the threshold = %d, want 0", got)
	}
}

func TestProbeHeldOverFailsAfterWait(t *testing.T) {
	r := newRig(t, rigOpts{marked: true, timeout: 2 * time.Second})
	r.setBusy(0.1)
	r.load.Store(5)
	for range 60 {
		r.step()
	}
	if b := r.c.Breakers()[0]; !b.Held {
		t.Fatalf("breaker after 59 s over = %+v, want held", b)
	}
	r.step() // the minute is up: the probe goes ahead, and fails
	if b := r.c.Breakers()[0]; b.State != "open" || b.Held {
		t.Fatalf("breaker after a minute held = %+v, want open, not held", b)
	}
	if got := r.c.Level(); got != LevelNoReceipts {
		t.Fatalf("level = %d, want 1", got)
	}
}

func TestProbeNotHeld(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    rigOpts
	}{
		{"a signal not marked", rigOpts{}},
		{"holding off", rigOpts{marked: true, probeBusy: -1}},
		{"no Busy reader", rigOpts{marked: true, noBusy: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, tc.o)
			r.step()
			if got := r.c.Level(); got != LevelNormal {
				t.Fatalf("level at busy 0.9 = %d, want 0 (probe not held)", got)
			}
		})
	}
}

// Without a Busy reader nothing is held: a reading over the threshold
// at half-open fails the probe as it always did.
func TestNoBusyNoHold(t *testing.T) {
	r := newRig(t, rigOpts{marked: true, noBusy: true, timeout: 2 * time.Second})
	r.load.Store(5)
	r.step()
	if b := r.c.Breakers()[0]; b.State != "open" || b.Held {
		t.Fatalf("breaker after a bad probe reading without a Busy reader = %+v, want open, not held", b)
	}
}

func TestBusy(t *testing.T) {
	var used time.Duration
	known := true
	at := time.Unix(1000, 0)
	read := newBusy(func() (time.Duration, bool) { return used, known }, func() time.Time { return at }, 2)
	used, at = time.Second, at.Add(time.Second)
	if got := read(); got != 0.5 {
		t.Fatalf("one CPU second in one second on two cores = %v, want 0.5", got)
	}
	used, at = used+3*time.Second, at.Add(2*time.Second)
	if got := read(); got != 0.75 {
		t.Fatalf("three CPU seconds in two seconds on two cores = %v, want 0.75", got)
	}
	known = false
	used, at = used+time.Second, at.Add(time.Second)
	if got := read(); got != 0 {
		t.Fatalf("unknown CPU = %v, want 0", got)
	}
	known = true
	used, at = used+time.Second, at.Add(time.Second)
	if got := read(); got != 0 {
		t.Fatalf("first reading after an unknown one = %v, want 0", got)
	}
	used, at = used+time.Second, at.Add(time.Second)
	if got := read(); got != 0.5 {
		t.Fatalf("a reading after that = %v, want 0.5", got)
	}
}

func TestCgroupCPU(t *testing.T) {
	for in, want := range map[string]float64{
		"max 100000\n":    0,
		"100000 100000\n": 1,
		"250000 100000":   2.5,
		"25000 100000":    0.25,
		"":                0,
		"x 100000":        0,
		"100000":          0,
	} {
		if got := cgroupCPU(in); got != want {
			t.Errorf("cgroupCPU(%q) = %v, want %v", in, got, want)
		}
	}
}

// TestBreakerStatusShowsRules: a breaker's status says the reading that
// trips it at once and the CPU share that holds its probe, where they
// apply, and neither where they do not.
func TestBreakerStatusShowsRules(t *testing.T) {
	read := func() float64 { return 0 }
	c := New(Config{Busy: func() float64 { return 0 }, ProbeBusy: 0.7, Signals: []Signal{
		{Name: "delivery_latency", Threshold: 0.25, Relief: LevelNoReceipts, AtOnce: true, Headroom: true, Read: read},
		{Name: "ws_failures", Threshold: 20, Relief: LevelNoWS, Read: read},
	}})
	got := c.Breakers()
	if got[0].TripsAtOnce != 1 || got[0].ProbeBusy != 0.7 {
		t.Errorf("delivery_latency status %+v, want trips at once at 1 (four times 0.25), probe held at 0.7", got[0])
	}
	if got[1].TripsAtOnce != 0 || got[1].ProbeBusy != 0 {
		t.Errorf("ws_failures status %+v, want neither rule", got[1])
	}
	never := New(Config{TripAtOnce: -1, ProbeBusy: -1, Busy: func() float64 { return 0 }, Signals: []Signal{
		{Name: "delivery_latency", Threshold: 0.25, Relief: LevelNoReceipts, AtOnce: true, Headroom: true, Read: read},
	}})
	if b := never.Breakers()[0]; b.TripsAtOnce != 0 || b.ProbeBusy != 0 {
		t.Errorf("with both rules off, status %+v, want neither", b)
	}
}
