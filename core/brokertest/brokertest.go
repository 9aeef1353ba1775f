// Package brokertest is the conformance suite that every core.Broker
// must pass, beside core/storetest for the Store half of an engine: the
// embedded engine's LocalBroker today, the Redis engine's broker later.
// An engine's test calls Run with a Factory and how many nodes it can
// run on one backend (1 for the embedded engine):
//
//	func TestBroker(t *testing.T) {
//		brokertest.Run(t, 1, func(t *testing.T, dir string) core.Engine {
//			s, err := bolt.Open(bolt.Config{Path: filepath.Join(dir, "chat.db")})
//			…
//			return s
//		})
//	}
//
// The suite fixes what core.Broker leaves implicit:
//
//   - Broadcast reaches, once, every node subscribed to the room, the
//     sending node included; ephemeral events keep their fields.
//   - Announce reaches every node once, the sending node included.
//   - Committed messages reach every subscribed node once, in seq order,
//     after the store can read them (with one node, storetest covers it).
//   - Subscribe and Unsubscribe may be repeated.
//
// It never sleeps to synchronise; it imports core and core/protocol only.
package brokertest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/protocol"
)

// Factory builds one node's engine on the backend in dir: every call with
// the same dir is another node sharing it. The suite closes the engines.
type Factory func(t *testing.T, dir string) core.Engine

// Run runs the suite with up to nodes nodes on one backend.
func Run(t *testing.T, nodes int, f Factory) {
	t.Run("BroadcastReachesSubscribers", func(t *testing.T) { testBroadcast(t, nodes, f) })
	t.Run("AnnounceReachesEveryNode", func(t *testing.T) { testAnnounce(t, nodes, f) })
	t.Run("MessagesReachSubscribers", func(t *testing.T) { testMessages(t, nodes, f) })
}

// node is one engine with a recording handler.
type node struct {
	core.Engine
	*Recorder
}

// Recorder is a core.Handler that records what an engine delivers, for
// tests to wait on: this suite's, and an engine's own tests. Create it
// with NewRecorder. Its fields are guarded by its lock: read them in the
// condition given to Until, or after Until has returned and nothing more
// is in flight.
type Recorder struct {
	mu       sync.Mutex
	changed  chan struct{} // closed and replaced on each event; guarded by mu
	Msgs     []protocol.Message
	Events   []protocol.Envelope
	Controls []core.Control
}

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder { return &Recorder{changed: make(chan struct{})} }

// Publish implements core.Handler.
func (r *Recorder) Publish(msgs []protocol.Message) {
	r.add(func() { r.Msgs = append(r.Msgs, msgs...) })
}

// Deliver implements core.Handler.
func (r *Recorder) Deliver(_ string, e protocol.Envelope) {
	r.add(func() { r.Events = append(r.Events, e) })
}

// Control implements core.Handler.
func (r *Recorder) Control(c core.Control) { r.add(func() { r.Controls = append(r.Controls, c) }) }

func (r *Recorder) add(fn func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fn()
	close(r.changed)
	r.changed = make(chan struct{})
}

// WaitTimeout is how long Until waits before it fails the test: a
// failure deadline for a loaded machine, never a timing assertion.
const WaitTimeout = 20 * time.Second

// Until waits until done, called with the lock held, holds; it fails the
// test after WaitTimeout. It never sleeps: it wakes on each delivery.
func (r *Recorder) Until(t testing.TB, what string, done func() bool) {
	t.Helper()
	deadline := time.After(WaitTimeout)
	for {
		r.mu.Lock()
		ok, changed := done(), r.changed
		r.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func start(t *testing.T, nodes int, f Factory) []*node {
	t.Helper()
	dir := t.TempDir()
	out := make([]*node, nodes)
	for i := range out {
		n := &node{Recorder: NewRecorder()}
		n.Engine = f(t, dir)
		n.Register(n.Recorder)
		e := n.Engine
		t.Cleanup(func() { e.Close() })
		out[i] = n
	}
	return out
}

func testBroadcast(t *testing.T, nodes int, f Factory) {
	ns := start(t, nodes, f)
	for _, n := range ns {
		n.Subscribe("r")
		n.Subscribe("r") // repeated: harmless
	}
	for i, n := range ns {
		n.Broadcast("r", protocol.Envelope{Type: protocol.TypeTyping, Room: "r", User: fmt.Sprint("u", i), Name: "U"})
	}
	for i, n := range ns {
		n.Until(t, fmt.Sprintf("node %d to get %d typing events", i, nodes), func() bool { return len(n.Events) >= nodes })
	}
	// A fence from the first node: once every node has it, nothing else
	// is in flight, so the counts are final.
	ns[0].Broadcast("r", protocol.Envelope{Type: protocol.TypeReceipt, Room: "r", User: "fence", Seq: 7})
	for i, n := range ns {
		n.Until(t, fmt.Sprintf("node %d to get the fence", i), func() bool { return len(n.Events) >= nodes+1 })
		n.mu.Lock()
		seen := map[string]int{}
		for _, e := range n.Events {
			seen[e.Type+"/"+e.User]++
			if e.Room != "r" || (e.Type == protocol.TypeTyping && e.Name != "U") || (e.User == "fence" && e.Seq != 7) {
				t.Errorf("node %d got %+v: fields lost", i, e)
			}
		}
		n.mu.Unlock()
		for j := range ns {
			if seen[fmt.Sprintf("typing/u%d", j)] != 1 {
				t.Errorf("node %d got node %d's event %d times, want once", i, j, seen[fmt.Sprintf("typing/u%d", j)])
			}
		}
	}
	for _, n := range ns {
		n.Unsubscribe("r")
		n.Unsubscribe("r")
	}
}

func testAnnounce(t *testing.T, nodes int, f Factory) {
	ns := start(t, nodes, f)
	ns[len(ns)-1].Announce(core.Control{Topic: "level", Data: []byte(`{"level":2}`)})
	for i, n := range ns {
		n.Until(t, fmt.Sprintf("node %d to get the control event", i), func() bool { return len(n.Controls) >= 1 })
		n.mu.Lock()
		c := n.Controls[0]
		n.mu.Unlock()
		if c.Topic != "level" || string(c.Data) != `{"level":2}` {
			t.Errorf("node %d got %+v", i, c)
		}
	}
}

func testMessages(t *testing.T, nodes int, f Factory) {
	ns := start(t, nodes, f)
	for _, n := range ns {
		n.Subscribe("m")
	}
	const count = 20
	for i := range count {
		from := ns[i%len(ns)]
		if _, _, err := from.Append(t.Context(), protocol.Message{Room: "m", ID: fmt.Sprint("id", i), From: "u", Name: "U", Text: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	for i, n := range ns {
		n.Until(t, fmt.Sprintf("node %d to get %d messages", i, count), func() bool { return len(n.Msgs) >= count })
		n.mu.Lock()
		for k, m := range n.Msgs {
			if m.Seq != uint64(k+1) {
				t.Errorf("node %d: message %d has seq %d, want in order from 1", i, k, m.Seq)
			}
		}
		n.mu.Unlock()
	}
}
