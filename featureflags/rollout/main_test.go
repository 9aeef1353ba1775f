package rollout

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/chatd/chatd/featureflags"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var t0 = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

// env is one node: a real flag store, a meter, a plan file in a temporary
// directory and a manager, all on a clock the test moves.
type env struct {
	t      *testing.T
	flags  *featureflags.Store
	meter  *Meter
	store  *FileStore
	m      *Manager
	reg    *prometheus.Registry
	leader atomic.Bool
	now    time.Time
	minute int // simulated minutes since t0, for the traffic's baseline
	users  []string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, store: NewFileStore(t.TempDir()), now: t0}
	e.leader.Store(true)
	for i := range 500 {
		e.users = append(e.users, fmt.Sprintf("user-%d", i))
	}
	e.restart()
	return e
}

// restart replaces the node's process: a new flag store at its defaults, a
// new meter and a new manager on the same plan file.
func (e *env) restart() {
	e.flags = featureflags.NewStore(featureflags.Config{Logger: quiet(), Now: func() time.Time { return e.now }})
	e.meter = &Meter{}
	e.reg = prometheus.NewRegistry()
	e.m = NewManager(Config{Flags: e.flags, Store: e.store, Meter: e.meter, Logger: quiet(),
		Metrics: e.reg, Clock: e, Leader: e.leader.Load})
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// env is the manager's clock: Now is the simulated time; Run is not used
// with it.
func (e *env) Now() time.Time { return e.now }

func (e *env) NewTicker(time.Duration) (<-chan time.Time, func()) { return nil, func() {} }

func (e *env) start(req StartRequest) Plan {
	e.t.Helper()
	p, err := e.m.Start(context.Background(), req, "admin:ops")
	if err != nil {
		e.t.Fatalf("start: %v", err)
	}
	return p
}

func rr(steps ...int) StartRequest {
	return StartRequest{Flag: featureflags.ReadReceipts, Steps: steps, Hold: Duration(time.Hour),
		Window: Duration(10 * time.Minute)}
}

// fault is what goes wrong for the users inside the rollout.
type fault struct {
	errors     float64       // extra errors per session
	disconnect bool          // sessions end with 1006
	latency    time.Duration // instead of 5ms
}

// minuteOfTraffic moves the clock one minute on, during which every user
// opens a session, receives five messages and closes it; one session in a
// hundred gets an error. Users for whom flag is on suffer f. Then the
// manager ticks.
func (e *env) minuteOfTraffic(flag string, f fault) {
	e.now = e.now.Add(time.Minute)
	e.minute++
	set := e.flags.Snapshot()
	for i, u := range e.users {
		inside := set.On(flag, u)
		e.meter.SessionOpened(u, "websocket")
		lat := 5 * time.Millisecond
		if inside && f.latency > 0 {
			lat = f.latency
		}
		for range 5 {
			e.meter.Delivered(u, lat)
		}
		if (i+e.minute)%100 == 0 {
			e.meter.ErrorReply(u, "rate_limited")
		}
		if inside && f.errors > 0 && float64((i*7+e.minute)%100) < 100*f.errors {
			e.meter.ErrorReply(u, "internal")
		}
		code := 1000
		if inside && f.disconnect {
			code = 1006
		}
		e.meter.SessionClosed(u, "websocket", code)
	}
	e.m.Tick(context.Background(), e.now)
}

// run simulates minutes of traffic, stopping early when stop holds after
// a tick. It returns the minutes run.
func (e *env) run(minutes int, flag string, f fault, stop func(Plan) bool) int {
	e.t.Helper()
	for i := 1; i <= minutes; i++ {
		e.minuteOfTraffic(flag, f)
		if stop != nil && stop(e.plan(flag)) {
			return i
		}
	}
	return minutes
}

func (e *env) plan(flag string) Plan {
	e.t.Helper()
	for _, p := range e.m.Plans() {
		if p.Flag == flag {
			return p
		}
	}
	e.t.Fatalf("no plan for %s", flag)
	return Plan{}
}

func (e *env) rollout(flag string) int {
	f, _ := e.flags.Snapshot().Get(flag)
	if !f.Enabled {
		return -1
	}
	return f.Rollout
}

// lastAudit returns the actor of the flag's newest audit entry.
func (e *env) lastAudit(flag string) string {
	a := e.flags.Audit()
	for i := len(a) - 1; i >= 0; i-- {
		if a[i].Name == flag {
			return a[i].Actor
		}
	}
	return ""
}

func mustContain(t *testing.T, what, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Fatalf("%s = %q, want it to contain %q", what, s, sub)
		}
	}
}

// manualClock is a Clock for Run: the test sets the time and sends the
// ticks.
type manualClock struct {
	mu   sync.Mutex
	now  time.Time
	tick chan time.Time
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *manualClock) set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

func (c *manualClock) NewTicker(time.Duration) (<-chan time.Time, func()) { return c.tick, func() {} }

// metric returns the value of the gauge or counter name with the given
// label values, in label name order, or -1 when there is none.
func metric(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			lp := m.GetLabel()
			if len(lp) != len(labels) {
				continue
			}
			for i, l := range lp {
				if l.GetValue() != labels[i] {
					continue next
				}
			}
			if g := m.GetGauge(); g != nil {
				return g.GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	return -1
}
