package degrade

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// waitHalfOpen waits for c's first breaker to go half-open: its timeout
// runs on real time, not on the controller's clock.
func waitHalfOpen(t *testing.T, c *Controller) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for c.Breakers()[0].State != "half-open" {
		if time.Now().After(deadline) {
			t.Fatal("breaker never went half-open")
		}
		time.Sleep(time.Millisecond)
	}
}

// clock is a settable clock for the controller's own timing (pins and
// step-down). The breakers' timeouts run on real time.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func TestManualPinExpires(t *testing.T) {
	clk := &clock{now: time.Unix(1000, 0)}
	c := New(Config{Now: clk.Now})
	changes, cancel := c.Subscribe()
	defer cancel()
	if err := c.SetManual(2, 30*time.Minute, "admin:alice"); err != nil {
		t.Fatal(err)
	}
	if got := <-changes; got.To != 2 || got.By != "admin:alice" || got.Mode != Manual {
		t.Fatalf("change = %+v", got)
	}
	c.Step()
	if c.Level() != 2 {
		t.Fatalf("level moved while pinned: %d", c.Level())
	}
	clk.Add(31 * time.Minute)
	c.Step() // the pin expires: auto mode, no breaker asks for anything
	if mode, _ := c.Mode(); mode != Auto {
		t.Fatalf("mode after expiry = %s", mode)
	}
	if err := c.SetManual(4, 0, "x"); err != ErrBadLevel {
		t.Fatalf("level 4 accepted: %v", err)
	}
}

func TestAutoTripsAndStepsBack(t *testing.T) {
	clk := &clock{now: time.Unix(1000, 0)}
	var load atomic.Int64
	c := New(Config{
		Now: clk.Now,
		Signals: []Signal{{Name: "connections", Threshold: 100, Relief: LevelPoll,
			Read: func() float64 { return float64(load.Load()) }}},
		TripAfter: 3, ProbeReadings: 2, BreakerTimeout: 200 * time.Millisecond, StepDown: time.Minute,
	})
	load.Store(300) // over, but under TripAtOnce's four times
	for i := 0; i < 2; i++ {
		c.Step()
		if c.Level() != 0 {
			t.Fatalf("tripped after %d bad readings, want 3", i+1)
		}
	}
	c.Step()
	if c.Level() != LevelPoll {
		t.Fatalf("level = %d after 3 bad readings, want 3", c.Level())
	}
	if s := c.Breakers()[0]; s.State != "open" || s.Value != 300 {
		t.Fatalf("breaker = %+v", s)
	}

	// The load clears. The breaker probes after its timeout (real time,
	// long enough that a busy machine cannot let it pass before the check
	// above),
	// and the level comes down one step per StepDown (the test clock).
	load.Store(10)
	var seen []Level
	deadline := time.Now().Add(10 * time.Second)
	for c.Level() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("level stuck at %d; steps %v", c.Level(), seen)
		}
		before := c.Level()
		clk.Add(time.Minute)
		c.Step()
		if l := c.Level(); l != before {
			if l != before-1 {
				t.Fatalf("level jumped from %d to %d", before, l)
			}
			seen = append(seen, l)
		}
		time.Sleep(time.Millisecond) // lets the breaker's real-time timeout pass
	}
	if len(seen) != 3 {
		t.Fatalf("steps down = %v, want 2, 1, 0", seen)
	}
}

// TestTripAtOnce: for a signal marked AtOnce, one reading at TripAtOnce
// times the threshold trips the breaker without waiting for TripAfter
// readings; one just under it counts as one bad reading; a negative
// TripAtOnce, or a signal not marked, never trips at once.
func TestTripAtOnce(t *testing.T) {
	for _, tc := range []struct {
		name    string
		atOnce  float64
		marked  bool
		reading int64
		want    Level
	}{
		{"default, four times", 0, true, 400, LevelNoReceipts},
		{"default, under four times", 0, true, 399, LevelNormal},
		{"twice, twice", 2, true, 200, LevelNoReceipts},
		{"under 1 is 1", 0.5, true, 100, LevelNoReceipts},
		{"never", -1, true, 100_000, LevelNormal},
		{"a signal not marked", 0, false, 100_000, LevelNormal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var load atomic.Int64
			c := New(Config{TripAfter: 3, TripAtOnce: tc.atOnce, BreakerTimeout: time.Hour,
				Signals: []Signal{{Name: "delivery_latency", Threshold: 100, Relief: LevelNoReceipts, AtOnce: tc.marked,
					Read: func() float64 { return float64(load.Load()) }}}})
			load.Store(tc.reading)
			c.Step()
			if got := c.Level(); got != tc.want {
				t.Fatalf("level after one reading of %d = %d, want %d", tc.reading, got, tc.want)
			}
			if tc.want == LevelNormal {
				// Still counted as a bad reading: two more trip it.
				c.Step()
				c.Step()
				if got := c.Level(); got != LevelNoReceipts {
					t.Fatalf("level after three readings of %d = %d, want 1", tc.reading, got)
				}
			}
		})
	}
}

func TestProbeFailureReopens(t *testing.T) {
	clk := &clock{now: time.Unix(1000, 0)}
	var load atomic.Int64
	c := New(Config{Now: clk.Now, TripAfter: 1, ProbeReadings: 3, BreakerTimeout: 200 * time.Millisecond,
		StepDown: time.Minute,
		Signals: []Signal{{Name: "ws_failures", Threshold: 1, Relief: LevelNoWS,
			Read: func() float64 { return float64(load.Load()) }}}})
	load.Store(5)
	c.Step()
	if c.Level() != LevelNoWS {
		t.Fatalf("level = %d", c.Level())
	}
	waitHalfOpen(t, c)
	c.Step() // the probe reading is still bad: open again
	if s := c.Breakers()[0].State; s != "open" {
		t.Fatalf("state after failed probe = %s", s)
	}
	if c.Level() != LevelNoWS {
		t.Fatalf("level = %d, want 2", c.Level())
	}
}

type flagsFunc func(name, user string) bool

func (f flagsFunc) On(name, user string) bool { return f(name, user) }

func TestOfferFor(t *testing.T) {
	all := flagsFunc(func(string, string) bool { return true })
	cases := []struct {
		level      Level
		transports []string
		receipts   bool
	}{
		{0, []string{"websocket", "sse", "poll"}, true},
		{1, []string{"websocket", "sse", "poll"}, false},
		{2, []string{"sse", "poll"}, false},
		{3, []string{"poll"}, false},
	}
	for _, tc := range cases {
		o := OfferFor(tc.level, all, "u")
		if len(o.Transports) != len(tc.transports) || o.Features["read_receipts"] != tc.receipts || o.Features["typing"] != tc.receipts {
			t.Errorf("level %d: %+v", tc.level, o)
		}
		for i, tr := range tc.transports {
			if o.Transports[i] != tr {
				t.Errorf("level %d: transports %v", tc.level, o.Transports)
			}
		}
		if !o.Features["presence"] {
			t.Errorf("level %d turned presence off", tc.level)
		}
	}
	noWS := flagsFunc(func(name, _ string) bool { return name != FlagWebSocket })
	if o := OfferFor(0, noWS, "u"); o.Allows(WebSocket) || !o.Allows(SSE) {
		t.Errorf("flag off still offers websocket: %v", o.Transports)
	}
	// A flag cannot raise what the level took away.
	if o := OfferFor(2, all, "u"); o.Allows(WebSocket) {
		t.Errorf("level 2 offers websocket")
	}
	if c := OfferFor(1, all, "u").Control(); c.Type != "control" || c.Level == nil || *c.Level != 1 || c.PollIntervalMS != 5000 {
		t.Errorf("control = %+v", c)
	}
}

func TestPolicy(t *testing.T) {
	var nilPolicy *Policy
	if o := nilPolicy.Offer("u"); len(o.Transports) != 3 || !nilPolicy.FeatureOn("u", "typing") || nilPolicy.Short() || nilPolicy.Relieving() {
		t.Fatalf("nil policy: %+v", o)
	}
	ctl := New(Config{})
	p := &Policy{Controller: ctl, Transports: []string{SSE, Poll}, PollInterval: 200 * time.Millisecond,
		Flags: flagsFunc(func(name, user string) bool { return !(name == "typing" && user == "bob") })}
	if o := p.Offer("alice"); len(o.Transports) != 2 || o.Allows(WebSocket) || o.PollIntervalMS != 200 {
		t.Fatalf("offer limited to the server's transports: %+v", o)
	}
	if p.FeatureOn("bob", "typing") || !p.FeatureOn("alice", "typing") {
		t.Fatal("flags not applied per user")
	}
	sseOn := p.Offers(SSE)
	if !sseOn("alice") || p.Relieving() {
		t.Fatal("sse not offered, or load relieved, at level 0")
	}
	if err := ctl.SetManual(LevelNoReceipts, 0, "test"); err != nil {
		t.Fatal(err)
	}
	if !p.Relieving() || p.Short() {
		t.Fatal("level 1 does not relieve load, or shortens polls")
	}
	if err := ctl.SetManual(LevelPoll, 0, "test"); err != nil {
		t.Fatal(err)
	}
	if sseOn("alice") || !p.Short() || !p.Relieving() || p.FeatureOn("alice", "typing") {
		t.Fatal("level 3 did not take sse, typing and long polls away")
	}
	if c := p.Offer("alice").Control(); *c.Level != 3 || len(c.Transports) != 1 {
		t.Fatalf("control %+v", c)
	}
}

// TestEscalation: a breaker whose signal stays over its threshold
// without falling by a tenth for EscalateAfter readings after it tripped
// asks for Signal.Escalate instead of its relief; a good reading, or one
// that fell by a tenth, starts the count over; once the breaker has
// closed, the next trip asks for the relief again.
func TestEscalation(t *testing.T) {
	clk := &clock{now: time.Unix(1000, 0)}
	var load atomic.Int64
	c := New(Config{Now: clk.Now, TripAfter: 1, EscalateAfter: 3, ProbeReadings: 1,
		BreakerTimeout: 2 * time.Second, StepDown: time.Nanosecond, // long enough that a busy machine cannot reach half-open before the escalation
		Signals: []Signal{{Name: "delivery_latency", Threshold: 1, Relief: LevelNoReceipts, Escalate: LevelPoll,
			Read: func() float64 { return float64(load.Load()) }}}})
	step := func(v int64, want Level, what string) {
		t.Helper()
		load.Store(v)
		c.Step()
		if l := c.Level(); l != want {
			t.Fatalf("%s: level %d, want %d (breaker %+v)", what, l, want, c.Breakers()[0])
		}
	}
	step(5, LevelNoReceipts, "the trip")
	step(5, LevelNoReceipts, "1st bad reading after the trip")
	step(0, LevelNoReceipts, "a good reading") // the relief acted, for now
	step(50, LevelNoReceipts, "over again: the new reference")
	step(40, LevelNoReceipts, "over but falling by a fifth") // a backlog draining
	step(38, LevelNoReceipts, "over, falling by a twentieth, 1st")
	step(37, LevelNoReceipts, "over, not falling by a tenth from 40, 2nd")
	step(44, LevelPoll, "over and rising, 3rd: escalated")
	if s := c.Breakers()[0]; s.State != "open" || s.Relief != int(LevelPoll) {
		t.Fatalf("breaker after escalating = %+v", s)
	}
	step(5, LevelPoll, "still bad: it stays at the escalated level")

	// The breaker probes after its timeout (real time) one below its
	// escalated relief, and closes on a good reading.
	waitHalfOpen(t, c)
	load.Store(0)
	c.Step()
	if s := c.Breakers()[0]; s.State != "closed" || s.Relief != int(LevelNoReceipts) {
		t.Fatalf("breaker after a good probe = %+v, want closed with relief 1", s)
	}
	for l := c.Level(); l > 0; l = c.Level() {
		clk.Add(time.Second)
		c.Step()
		if c.Level() != l-1 {
			t.Fatalf("stepping down from %d: level %d", l, c.Level())
		}
	}
	step(5, LevelNoReceipts, "a new trip asks for the relief, not the escalation")
}

// TestNoEscalationByDefault: without EscalateAfter, a tripped breaker
// asks for its relief however long its signal stays bad and rising.
func TestNoEscalationByDefault(t *testing.T) {
	clk := &clock{now: time.Unix(1000, 0)}
	var load atomic.Int64
	c := New(Config{Now: clk.Now, TripAfter: 1, StepDown: time.Nanosecond,
		Signals: []Signal{{Name: "delivery_latency", Threshold: 1, Relief: LevelNoReceipts, Escalate: LevelPoll,
			Read: func() float64 { return float64(load.Load()) }}}})
	for i := range 50 {
		load.Store(int64(5 + i))
		c.Step()
		if l := c.Level(); l != LevelNoReceipts {
			t.Fatalf("reading %d, %d over the threshold: level %d, want %d", i, 5+i, l, LevelNoReceipts)
		}
	}
	if s := c.Breakers()[0]; s.Relief != int(LevelNoReceipts) {
		t.Fatalf("breaker = %+v, want relief %d", s, LevelNoReceipts)
	}
}
