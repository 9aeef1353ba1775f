package core_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/core/brokertest"
	"github.com/chatd/chatd/core/protocol"
)

// A session resuming from any position gets, byte for byte, what the
// store would replay, whether the room's recent window serves it or the
// store does: after an edit or a delete the window keeps only what came
// after the last entry naming its target, which the store reads back
// changed (the edited text; after a delete the message without its text,
// and its edits redacted). Positions the window covers are replayed from
// memory, the others from the store; the counts show which served each.
func TestReplayFromMemoryMatchesStore(t *testing.T) {
	for _, tc := range []struct {
		name              string
		frames            int
		fromMem, fromDisk float64
	}{
		// 17 entries: messages 1..8, an edit of 3 (9), an edit of 5 (10),
		// a delete of 5 (11), messages 12..17. The edits cut the window
		// through 3, then 5; the delete through 10, the edit of 5 it
		// redacts. The window ends as 11..17: positions 10..16 come from
		// memory (7+6+...+1 entries), 0..9 from the store (17+16+...+8).
		{"default", 0, 28, 125},
		// A window of 4 entries holds 14..17: positions 13..16 from
		// memory, 0..12 from the store (17+16+...+5).
		{"four entries", 4, 4 + 3 + 2 + 1, 143},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			reg := prometheus.NewRegistry()
			hub, st := newHubOver(t, core.Config{Metrics: reg, RecentFrames: tc.frames}, nil)
			alice := auth.Identity{User: "alice"}
			watcher := watch(t, hub, alice, "r")
			for i := range 8 {
				if _, err := hub.Send(ctx, alice, "r", fmt.Sprintf("m%d", i+1), fmt.Sprintf("text %d", i+1)); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := hub.Edit(ctx, alice, "r", "e1", 3, "edited"); err != nil {
				t.Fatal(err)
			}
			if _, err := hub.Edit(ctx, alice, "r", "e2", 5, "edited before its delete"); err != nil {
				t.Fatal(err)
			}
			if _, err := hub.Delete(ctx, alice, "r", "d1", 5); err != nil {
				t.Fatal(err)
			}
			var last protocol.Message
			for i := 9; i <= 14; i++ {
				var err error
				if last, err = hub.Send(ctx, alice, "r", fmt.Sprintf("m%d", i), fmt.Sprintf("text %d", i)); err != nil {
					t.Fatal(err)
				}
			}
			waitSeq(t, watcher, last.Seq) // published, so in the window

			for after := uint64(0); after <= last.Seq; after++ {
				page, err := st.Since(ctx, "r", after, 100)
				if err != nil {
					t.Fatal(err)
				}
				rec := newRecorder()
				s, err := hub.Connect(auth.Identity{User: "bob"}, rec, core.SessionOptions{})
				if err != nil {
					t.Fatal(err)
				}
				if err := s.Join(ctx, "r", &after, true); err != nil {
					t.Fatal(err)
				}
				if err := s.Flush(ctx); err != nil {
					t.Fatal(err)
				}
				matchStore(t, fmt.Sprint("from ", after), rec, page.Messages)
				s.Close(core.DisconnectDone)
			}
			if n := metric(t, reg, "chat_replayed_entries_total", "from", "memory"); n != tc.fromMem {
				t.Errorf("replayed from memory: %v, want %v", n, tc.fromMem)
			}
			if n := metric(t, reg, "chat_replayed_entries_total", "from", "store"); n != tc.fromDisk {
				t.Errorf("replayed from the store: %v, want %v", n, tc.fromDisk)
			}
			if n := gaugeValue(t, reg, "chat_recent_bytes"); n <= 0 {
				t.Errorf("chat_recent_bytes = %v with a window in use", n)
			}
		})
	}
}

// With the window off (RecentFrames negative) every replay reads the
// store, and a room keeps nothing.
func TestReplayWindowOff(t *testing.T) {
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	hub := newHub(t, core.Config{Metrics: reg, RecentFrames: -1})
	alice := auth.Identity{User: "alice"}
	watcher := watch(t, hub, alice, "r")
	m, err := hub.Send(ctx, alice, "r", "m1", "hello")
	if err != nil {
		t.Fatal(err)
	}
	waitSeq(t, watcher, m.Seq)
	s, err := hub.Connect(auth.Identity{User: "bob"}, newRecorder(), core.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	zero := uint64(0)
	if err := s.Join(ctx, "r", &zero, true); err != nil {
		t.Fatal(err)
	}
	if n := metric(t, reg, "chat_replayed_entries_total", "from", "store"); n != 1 {
		t.Errorf("replayed from the store: %v, want 1", n)
	}
	if n := gaugeValue(t, reg, "chat_recent_bytes"); n != 0 {
		t.Errorf("chat_recent_bytes = %v with the window off", n)
	}
}

// A session that resumes while the node's fan-out is behind its store
// (entries committed, not yet published) is replayed from the room's
// window as far as it reaches and from the store only beyond it, and
// then gets each entry exactly once when the held ones are published.
// Before, any replay that the window did not carry to the store's head
// read all of it from the store, which is what a loaded node's polls did.
func TestReplayWindowWhileFanoutLags(t *testing.T) {
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	eng := &brokertest.Lagging{}
	hub, st := newHubOver(t, core.Config{Metrics: reg}, func(e core.Engine) core.Engine { eng.Engine = e; return eng })
	alice := auth.Identity{User: "alice"}
	watcher := watch(t, hub, alice, "r")
	var last protocol.Message
	for i := range 5 {
		var err error
		if last, err = hub.Send(ctx, alice, "r", fmt.Sprintf("m%d", i+1), fmt.Sprintf("text %d", i+1)); err != nil {
			t.Fatal(err)
		}
	}
	waitSeq(t, watcher, last.Seq) // 1..5 published, so in the window
	eng.Hold()
	for i := 5; i < 8; i++ { // 6..8: stored, not published
		var err error
		if last, err = hub.Send(ctx, alice, "r", fmt.Sprintf("m%d", i+1), fmt.Sprintf("text %d", i+1)); err != nil {
			t.Fatal(err)
		}
	}

	rec := newRecorder()
	s, err := hub.Connect(auth.Identity{User: "bob"}, rec, core.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(core.DisconnectNormal)
	after := uint64(2)
	if err := s.Join(ctx, "r", &after, true); err != nil {
		t.Fatal(err)
	}
	if n := metric(t, reg, "chat_replayed_entries_total", "from", "memory"); n != 3 {
		t.Errorf("replayed from memory: %v, want 3 (seqs 3..5)", n)
	}
	if n := metric(t, reg, "chat_replayed_entries_total", "from", "store"); n != 3 {
		t.Errorf("replayed from the store: %v, want 3 (seqs 6..8)", n)
	}
	eng.Release()
	waitSeq(t, rec, last.Seq)
	waitSeq(t, watcher, last.Seq)
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	page, err := st.Since(ctx, "r", after, 100)
	if err != nil {
		t.Fatal(err)
	}
	matchStore(t, fmt.Sprint("from ", after), rec, page.Messages)
}

// matchStore fails unless the entries rec was written (joined envelopes
// aside) are, byte for byte, msgs as the store encodes them.
func matchStore(t *testing.T, what string, rec *recorder, msgs []protocol.Message) {
	t.Helper()
	var got [][]byte
	rec.mu.Lock()
	for _, f := range rec.frames {
		if f.Positions() && f.Type != protocol.TypeJoined {
			got = append(got, f.Data)
		}
	}
	rec.mu.Unlock()
	if len(got) != len(msgs) {
		t.Fatalf("%s: %d entries written, the store has %d", what, len(got), len(msgs))
	}
	for i, m := range msgs {
		if want := protocol.Encode(m.Envelope()); !bytes.Equal(got[i], want) {
			t.Fatalf("%s, entry %d:\n got %s\nwant %s", what, m.Seq, got[i], want)
		}
	}
}
