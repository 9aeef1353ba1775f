package degrade

import (
	"errors"
	"strings"
	"testing"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/protocol"
)

func signal(t *testing.T, sigs []Signal, name string) Signal {
	t.Helper()
	for _, s := range sigs {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no %s signal", name)
	return Signal{}
}

// failSessions opens one session per error on transport name, makes each
// write fail with it, and waits for the sessions to close.
func failSessions(t *testing.T, hub *core.Hub, name string, errs ...error) {
	t.Helper()
	for i, err := range errs {
		s := connect(t, hub, name+string(rune('a'+i)), &fakeConn{name: name, fail: err})
		s.Notify(protocol.Envelope{Type: protocol.TypeControl})
		waitDone(t, s)
	}
}

// ws_failures counts slow-consumer and write-failure closes of WebSocket
// sessions only: level 2 would do nothing for SSE or poll failures.
func TestWSFailuresCountWebSocketOnly(t *testing.T) {
	hub := newHub(t)
	ws := signal(t, DefaultSignals(hub, Capacity{Connections: 100}), "ws_failures")
	if v := ws.Read(); v != 0 {
		t.Fatalf("first reading = %v", v)
	}
	failSessions(t, hub, SSE, core.ErrSlow, errors.New("sse: broken pipe"))
	failSessions(t, hub, Poll, core.ErrSlow, errors.New("poll: broken pipe"))
	st := hub.Stats()
	if st.Failures[SSE] != 2 || st.Failures[Poll] != 2 {
		t.Fatalf("failures = %v; the sessions did not fail as slow or broken", st.Failures)
	}
	if v := ws.Read(); v != 0 {
		t.Fatalf("ws_failures = %v after sse and poll failures, want 0", v)
	}
	failSessions(t, hub, WebSocket, core.ErrSlow, errors.New("ws: broken pipe"), core.ErrSlow)
	if v := ws.Read(); v != 3 {
		t.Fatalf("ws_failures = %v after 3 websocket failures, want 3", v)
	}
	if v := ws.Read(); v != 0 {
		t.Fatalf("ws_failures = %v with no new failures, want 0", v)
	}
}

type statsFunc func() core.Stats

func (f statsFunc) Stats() core.Stats { return f() }

// useLimits makes the signals see l as the process's limits.
func useLimits(t *testing.T, l Limits) {
	old := readLimits
	readLimits = func() Limits { return l }
	t.Cleanup(func() { readLimits = old })
}

// A zero Capacity takes its connections and heap thresholds from the
// process's limits, and the controller shows them with their basis.
func TestDefaultSignalsDeriveFromLimits(t *testing.T) {
	src := statsFunc(func() core.Stats { return core.Stats{Sessions: 42} })
	useLimits(t, Limits{OpenFiles: 20000, Memory: 8 << 30})
	sigs := DefaultSignals(src, Capacity{})
	conns := signal(t, sigs, "connections")
	if conns.Threshold != 17744 || conns.Relief != LevelPoll || !strings.Contains(conns.Basis, "20000") {
		t.Fatalf("connections = %v (%q), want 17744 from the limit 20000", conns.Threshold, conns.Basis)
	}
	if v := conns.Read(); v != 42 {
		t.Fatalf("connections reads %v", v)
	}
	if heap := signal(t, sigs, "heap"); heap.Threshold != 4<<30 || heap.Relief != LevelPoll {
		t.Fatalf("heap threshold = %v, want half of 8 GiB", heap.Threshold)
	}

	var shown []BreakerStatus
	for _, b := range New(Config{Signals: sigs}).Breakers() {
		if b.Name == "connections" || b.Name == "heap" {
			shown = append(shown, b)
		}
	}
	if len(shown) != 2 || shown[0].Threshold != 17744 || shown[0].Basis != conns.Basis || shown[1].Basis == "" {
		t.Fatalf("breakers show %+v", shown)
	}

	useLimits(t, Limits{})
	sigs = DefaultSignals(src, Capacity{})
	if c := signal(t, sigs, "connections"); c.Threshold != FallbackConnections {
		t.Fatalf("unknown limit: connections = %v, want %d", c.Threshold, FallbackConnections)
	}
	for _, s := range sigs {
		if s.Name == "heap" {
			t.Fatal("heap signal on with memory unknown")
		}
	}

	useLimits(t, Limits{OpenFiles: 20000, Memory: 8 << 30})
	sigs = DefaultSignals(src, Capacity{Connections: 50, HeapBytes: 10})
	if c, h := signal(t, sigs, "connections"), signal(t, sigs, "heap"); c.Threshold != 50 || h.Threshold != 10 ||
		c.Basis != "configured" {
		t.Fatalf("configured capacity overridden: %v (%q), %v", c.Threshold, c.Basis, h.Threshold)
	}
}
