package core_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/core/protocol"
)

func newBatches() *batches {
	return &batches{more: make(chan struct{}, 1), closed: make(chan core.Disconnect, 1)}
}

// wait waits until ok holds over the writes so far (each as its frame
// types joined by commas), and returns them.
func (b *batches) wait(t *testing.T, ok func(writes []string) bool) []string {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		b.mu.Lock()
		w := make([]string, len(b.write))
		for i, types := range b.write {
			w[i] = strings.Join(types, ",")
		}
		b.mu.Unlock()
		if ok(w) {
			return w
		}
		select {
		case <-b.more:
		case <-deadline:
			t.Fatalf("writes so far: %q", w)
		}
	}
}

// holdSession connects alice to hub over tr, held (SessionOptions.Hold),
// with the greeting if greet.
func holdSession(t *testing.T, hub *core.Hub, tr core.Transport, greet bool) *core.Session {
	t.Helper()
	s, err := hub.Connect(auth.Identity{User: "alice", Name: "alice"}, tr, core.SessionOptions{Greet: greet, Hold: true})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func greetingHub(t *testing.T, cfg core.Config) *core.Hub {
	cfg.Greeting = func(string) ([]byte, bool) {
		return protocol.Encode(protocol.Envelope{Type: protocol.TypeControl}), true
	}
	return newHub(t, cfg)
}

// A held session writes nothing until Release, and then the greeting and
// the joined reply in one write.
func TestSessionHoldOneWrite(t *testing.T) {
	hub := greetingHub(t, core.Config{})
	tr := newBatches()
	s := holdSession(t, hub, tr, true)
	s.JoinRequested(context.Background(), "r", nil)
	tr.mu.Lock()
	before := len(tr.write)
	tr.mu.Unlock()
	if before != 0 {
		t.Fatalf("a held session wrote %d times before Release", before)
	}
	if !s.Release() {
		t.Fatal("Release with frames queued says no writer started")
	}
	w := tr.wait(t, func(w []string) bool { return len(w) > 0 })
	if w[0] != "control,joined" {
		t.Fatalf("first write %q, want the greeting and the joined reply together", w[0])
	}
}

// Release on a held session with nothing queued starts no writer and
// says so: the transport then knows no write is coming.
func TestSessionHoldReleaseEmpty(t *testing.T) {
	hub := newHub(t, core.Config{}) // no greeting
	s := holdSession(t, hub, newBatches(), false)
	if s.Release() {
		t.Fatal("Release with nothing queued says a writer started")
	}
}

// A held session whose queue fills with live traffic (a quarter of its
// bounds) starts its writer without waiting for Release: it is not
// closed as slow.
func TestSessionHoldQueueFills(t *testing.T) {
	hub := newHub(t, core.Config{QueueFrames: 16, SendRate: 1e9, SendBurst: 1 << 20})
	tr := newBatches()
	s := holdSession(t, hub, tr, false)
	ctx := context.Background()
	s.JoinRequested(ctx, "r", nil)
	bob := auth.Identity{User: "bob", Name: "bob"}
	for i := range 64 {
		if _, err := hub.Send(ctx, bob, "r", fmt.Sprint("m", i), "hello"); err != nil {
			t.Fatal(err)
		}
	}
	tr.wait(t, func([]string) bool {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		return len(tr.seqs) == 64
	})
	select {
	case d := <-tr.closed:
		t.Fatalf("closed with %+v while held", d)
	default:
	}
}

// A held session that closes writes its disconnect all the same.
func TestSessionHoldClose(t *testing.T) {
	hub := greetingHub(t, core.Config{})
	tr := newBatches()
	s := holdSession(t, hub, tr, true)
	s.Close(core.DisconnectNormal)
	w := tr.wait(t, func(w []string) bool { return len(w) > 0 })
	if w[0] != "control,disconnect" {
		t.Fatalf("writes %q, want the greeting and the disconnect", w)
	}
	select {
	case d := <-tr.closed:
		if d.Code != core.DisconnectNormal.Code {
			t.Fatalf("closed with %+v", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the transport was not closed")
	}
}

// A catch-up longer than the replay window, joined while the session is
// held, does not wait for a Release that comes only after it: waiting for
// room in the queue releases the writer. Every message arrives, once, in
// order.
func TestSessionHoldLongReplay(t *testing.T) {
	hub := greetingHub(t, core.Config{ReplayWindow: 1 << 10, RecentFrames: -1, SendRate: 1e9, SendBurst: 1 << 20})
	ctx := context.Background()
	bob := auth.Identity{User: "bob", Name: "bob"}
	const n = 100
	for i := range n {
		if _, err := hub.Send(ctx, bob, "r", fmt.Sprint("m", i), strings.Repeat("x", 100)); err != nil {
			t.Fatal(err)
		}
	}
	tr := newBatches()
	s := holdSession(t, hub, tr, true)
	joined := make(chan struct{})
	go func() {
		defer close(joined)
		s.JoinRequested(ctx, "r", protocol.Ptr(uint64(0))) // returns only once the replay is queued
	}()
	select {
	case <-joined:
	case <-time.After(10 * time.Second):
		t.Fatal("the join waits for room in the queue of a writer that never starts")
	}
	s.Release()
	tr.wait(t, func([]string) bool {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		return len(tr.seqs) >= n
	})
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for i, seq := range tr.seqs {
		if seq != uint64(i+1) {
			t.Fatalf("seqs %v, want 1 to %d once each", tr.seqs, n)
		}
	}
	if len(tr.write) < 2 {
		t.Fatalf("writes %q: a replay of %d bytes through a 1 KiB window took one write", tr.write, n*100)
	}
}

// While the node is behind, presence is put off, but for no longer than
// PresenceMaxDelay: a member still hears of a join.
func TestPresenceBehindBounded(t *testing.T) {
	var asked atomic.Int64
	hub := newHub(t, core.Config{
		PresenceInterval: 10 * time.Millisecond, PresenceMaxDelay: 30 * time.Millisecond,
		Behind: func() bool { asked.Add(1); return true },
	})
	watcher := newRecorder()
	joinAs(t, hub, "watcher", "r", watcher)
	joinAs(t, hub, "alice", "r", newRecorder())
	deadline := time.After(10 * time.Second)
	for !slices.ContainsFunc(presenceOf(t, watcher), func(e protocol.Envelope) bool { return e.User == "alice" }) {
		select {
		case <-watcher.more:
		case <-deadline:
			t.Fatalf("no presence of alice while the node is behind: %+v", presenceOf(t, watcher))
		}
	}
	if asked.Load() == 0 {
		t.Fatal("the presence pass never asked whether the node is behind")
	}
}

// The pass's decision: at once while the node keeps up; put off while it
// is behind, from the first pass put off until the bound.
func TestPresenceDue(t *testing.T) {
	t0 := time.Unix(1000, 0)
	const bound = 5 * time.Second
	steps := []struct {
		behind bool
		at     time.Duration
		due    bool
	}{
		{false, 0, true},
		{true, 1 * time.Second, false}, // the first put off: the bound counts from here
		{true, 2 * time.Second, false},
		{true, 5 * time.Second, false},
		{true, 6 * time.Second, true}, // 5 s after the first put off
		{true, 7 * time.Second, false},
		{false, 8 * time.Second, true}, // caught up
		{true, 9 * time.Second, false},
		{true, 13 * time.Second, false},
		{true, 14 * time.Second, true},
	}
	var since time.Time
	for _, s := range steps {
		var due bool
		due, since = core.PresenceDue(s.behind, t0.Add(s.at), since, bound)
		if due != s.due {
			t.Fatalf("at %v (behind %v): due %v, want %v", s.at, s.behind, due, s.due)
		}
	}
}
