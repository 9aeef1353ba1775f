package degrade

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/protocol"
)

// manualTimers is a clock whose timers run only when the test says so.
type manualTimers struct {
	mu     sync.Mutex
	all    []*manualTimer  // Guarded by mu.
	delays []time.Duration // each timer's delay, in order; guarded by mu
}

type manualTimer struct {
	owner   *manualTimers // Static after construction.
	f       func()        // Static after construction.
	stopped bool          // Guarded by owner.mu.
	fired   bool          // Guarded by owner.mu.
}

func (m *manualTimers) AfterFunc(d time.Duration, f func()) Timer {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := &manualTimer{owner: m, f: f}
	m.all = append(m.all, t)
	m.delays = append(m.delays, d)
	return t
}

// longest returns the longest delay armed.
func (m *manualTimers) longest() time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out time.Duration
	for _, d := range m.delays {
		out = max(out, d)
	}
	return out
}

func (t *manualTimer) Stop() bool {
	t.owner.mu.Lock()
	defer t.owner.mu.Unlock()
	was := !t.stopped && !t.fired
	t.stopped = true
	return was
}

// counts returns how many timers were armed and how many are still live.
func (m *manualTimers) counts() (armed, live int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, t := range m.all {
		if !t.stopped && !t.fired {
			live++
		}
	}
	return len(m.all), live
}

// fire runs, in the calling goroutine, the funcs of the timers that have
// not run and are live (stopped false) or stopped (stopped true): running
// stopped ones is what happens when Stop loses its race with the timer.
// It returns how many it ran.
func (m *manualTimers) fire(stopped bool) int {
	m.mu.Lock()
	var due []func()
	for _, t := range m.all {
		if !t.fired && t.stopped == stopped {
			t.fired = true
			due = append(due, t.f)
		}
	}
	m.mu.Unlock()
	for _, f := range due {
		f()
	}
	return len(due)
}

func levelOffer(l Level) func(string) Offer {
	return func(user string) Offer { return OfferFor(l, nil, user) }
}

// N rapid Applies leave one pending move per session, and one control
// envelope per session, even if every cancelled timer runs anyway.
func TestMoverOneMovePerSession(t *testing.T) {
	hub := newHub(t)
	clk := &manualTimers{}
	ws, sse, poll := &fakeConn{name: WebSocket}, &fakeConn{name: SSE}, &fakeConn{name: Poll}
	wsS, sseS, pollS := connect(t, hub, "ann", ws), connect(t, hub, "bob", sse), connect(t, hub, "cat", poll)
	m := &Mover{Hub: hub, Offer: levelOffer(LevelNoWS), AfterFunc: clk.AfterFunc}

	const applies = 10
	for i := 0; i < applies; i++ {
		m.Apply()
	}
	if n := m.pendingLen(); n != 3 {
		t.Fatalf("pending moves = %d after %d applies, want 3 (one per session)", n, applies)
	}
	if armed, live := clk.counts(); armed != 3*applies || live != 3 {
		t.Fatalf("timers armed %d, live %d; want %d armed, 3 live", armed, live, 3*applies)
	}
	// Cancelled timers that ran anyway find their move replaced.
	if ran := clk.fire(true); ran != 3*(applies-1) {
		t.Fatalf("ran %d cancelled timers", ran)
	}
	if n := m.pendingLen(); n != 3 {
		t.Fatalf("pending moves = %d after stale timers ran, want 3", n)
	}
	if ran := clk.fire(false); ran != 3 {
		t.Fatalf("ran %d live timers", ran)
	}
	if n := m.pendingLen(); n != 0 {
		t.Fatalf("pending moves = %d after firing, want 0", n)
	}

	flush(t, sseS)
	flush(t, pollS)
	waitDone(t, wsS) // websocket is not offered at level 2: closed with 4001
	for name, c := range map[string]*fakeConn{"websocket": ws, "sse": sse, "poll": poll} {
		got := c.controls(t)
		if len(got) != 1 {
			t.Fatalf("%s session got %d control envelopes, want 1", name, len(got))
		}
		if got[0].Level == nil || *got[0].Level != int(LevelNoWS) {
			t.Errorf("%s control = %+v, want level 2", name, got[0])
		}
	}
	if d := ws.closedWith(); d == nil || d.Code != protocol.CloseSwitchTransport {
		t.Fatalf("websocket session closed with %+v, want 4001", d)
	}
	if sse.closedWith() != nil || poll.closedWith() != nil {
		t.Fatal("an offered transport's session was closed")
	}
}

// A session that ends drops its pending move and stops its timer.
func TestMoverDropsEndedSession(t *testing.T) {
	hub := newHub(t)
	clk := &manualTimers{}
	gone, stays := &fakeConn{name: SSE}, &fakeConn{name: SSE}
	goneS, staysS := connect(t, hub, "ann", gone), connect(t, hub, "bob", stays)
	m := &Mover{Hub: hub, Offer: levelOffer(LevelNoReceipts), AfterFunc: clk.AfterFunc}

	m.Apply()
	m.Apply()
	goneS.Close(core.DisconnectNormal)
	waitDone(t, goneS)
	eventually(t, "the ended session's move dropped", func() bool { return m.pendingLen() == 1 })
	if _, live := clk.counts(); live != 1 {
		t.Fatalf("live timers = %d, want 1: the ended session's timer must be stopped", live)
	}
	m.Apply() // the hub no longer lists it
	if n := m.pendingLen(); n != 1 {
		t.Fatalf("pending = %d after another apply, want 1", n)
	}
	clk.fire(false)
	flush(t, staysS)
	if n := len(stays.controls(t)); n != 1 {
		t.Fatalf("open session got %d control envelopes, want 1", n)
	}
	if n := len(gone.controls(t)); n != 0 {
		t.Fatalf("ended session got %d control envelopes", n)
	}
}

// With real timers, a shutdown drops every pending move; nothing is left
// running (goleak checks).
func TestMoverRealTimersDroppedOnShutdown(t *testing.T) {
	hub := newHub(t)
	for _, u := range []string{"ann", "bob", "cat"} {
		connect(t, hub, u, &fakeConn{name: WebSocket})
	}
	m := &Mover{Hub: hub, Offer: levelOffer(LevelPoll), Window: time.Hour}
	m.Apply()
	m.Apply()
	if n := m.pendingLen(); n != 3 {
		t.Fatalf("pending = %d, want 3", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := hub.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "every move dropped", func() bool { return m.pendingLen() == 0 })
}

// Apply spreads its moves over Window, or over moving/MoveRate when more
// sessions must move than Window allows at that rate; sessions that stay
// on their transport do not widen it.
func TestMoverWidensForMany(t *testing.T) {
	hub := newHub(t)
	for i := range 40 {
		connect(t, hub, fmt.Sprint("w", i), &fakeConn{name: WebSocket})
	}
	for i := range 40 {
		connect(t, hub, fmt.Sprint("p", i), &fakeConn{name: Poll})
	}
	arm := func(level Level) *manualTimers {
		clk := &manualTimers{}
		m := &Mover{Hub: hub, Offer: levelOffer(level), AfterFunc: clk.AfterFunc,
			Window: time.Second, MoveRate: 10}
		m.Apply()
		if armed, _ := clk.counts(); armed != 80 {
			t.Fatalf("level %d: %d moves armed, want one per session (80)", level, armed)
		}
		return clk
	}
	// Level 1 moves nobody: the window is Window.
	if d := arm(LevelNoReceipts).longest(); d >= time.Second {
		t.Fatalf("level 1: a move armed %v ahead, want within the 1 s window", d)
	}
	// Level 2 moves the 40 WebSocket sessions: 40 at 10 a second is 4 s.
	// 80 draws from [0, 4 s) all under 1 s would be chance of 4^-80.
	if d := arm(LevelNoWS).longest(); d < time.Second || d >= 4*time.Second {
		t.Fatalf("level 2: the longest move armed %v ahead, want within [1 s, 4 s)", d)
	}
}
