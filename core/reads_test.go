package core_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/core/protocol"
)

// A flush sends each room one receipt envelope for all its readers, split
// at protocol.MaxBatch positions, to sessions that read batches, and
// each position in the plain form to the others; a room with one reader
// gets the plain form; a reader whose receipts are off is stored but not
// announced.
func TestReceiptsBatchPerRoomAndFlush(t *testing.T) {
	ctx := context.Background()
	quiet := func(user, feature string) bool { return user != "quiet" || feature != core.FeatureReadReceipts }
	hub, store := newHubOver(t, core.Config{ReadRate: 1e6, ReadBurst: 1e6, ReadFlush: time.Hour, Features: quiet}, nil)
	for _, room := range []string{"big", "small"} {
		if _, err := hub.Send(ctx, auth.Identity{User: "writer"}, room, "m-"+room, "x"); err != nil {
			t.Fatal(err)
		}
	}
	big, small, plain := newRecorder(), newRecorder(), newRecorder()
	joinWith(t, hub, "watcher", "big", big, core.SessionOptions{Batched: true})
	joinWith(t, hub, "watcher", "small", small, core.SessionOptions{Batched: true})
	joinAs(t, hub, "other", "big", plain) // without batches

	readers := protocol.MaxBatch + 44
	want := map[string]uint64{}
	for i := range readers {
		user := fmt.Sprintf("u%03d", i)
		want[user] = 1
		if _, err := hub.Read(ctx, auth.Identity{User: user}, "big", 1); err != nil {
			t.Fatal(err)
		}
	}
	for _, user := range []string{"solo", "quiet"} {
		if _, err := hub.Read(ctx, auth.Identity{User: user}, "small", 1); err != nil {
			t.Fatal(err)
		}
	}
	hub.FlushReads(ctx)

	all := map[string]uint64{}
	for _, e := range awaitEnvelopes(t, big, protocol.TypeReceipt, 2) {
		if e.Room != "big" || e.User != "" || len(e.Reads) == 0 || len(e.Reads) > protocol.MaxBatch {
			t.Fatalf("big got %+v, want a batch of at most %d positions", e, protocol.MaxBatch)
		}
		maps.Copy(all, e.Reads)
	}
	if !maps.Equal(all, want) {
		t.Fatalf("the batches carry %d positions, want every reader's %d", len(all), len(want))
	}
	// The session without batches gets each position in the plain form.
	clear(all)
	for _, e := range awaitEnvelopes(t, plain, protocol.TypeReceipt, readers) {
		if e.Reads != nil || e.User == "" {
			t.Fatalf("the plain session got %+v", e)
		}
		all[e.User] = e.Seq
	}
	if !maps.Equal(all, want) {
		t.Fatalf("the plain session got %d positions, want every reader's %d", len(all), len(want))
	}
	if e := awaitEnvelopes(t, small, protocol.TypeReceipt, 1)[0]; e.User != "solo" || e.Seq != 1 || e.Reads != nil {
		t.Fatalf("small got %+v, want solo's plain receipt and none for quiet", e)
	}
	if got, err := store.Reads(ctx, "small"); err != nil || got["quiet"] != 1 {
		t.Fatalf("stored reads %v, %v: quiet's position must be stored", got, err)
	}
}

// awaitEnvelopes waits until r has n frames of type typ and returns them
// decoded; more than n fails.
func awaitEnvelopes(t *testing.T, r *recorder, typ string, n int) []protocol.Envelope {
	t.Helper()
	var got []protocol.Envelope
	eventuallyCore(t, fmt.Sprintf("%d %s envelopes", n, typ), func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		got = got[:0]
		for _, f := range r.frames {
			if f.Type == typ {
				var e protocol.Envelope
				if err := json.Unmarshal(f.Data, &e); err != nil {
					t.Fatalf("%s: %v", f.Data, err)
				}
				got = append(got, e)
			}
		}
		return len(got) >= n
	})
	if len(got) != n {
		t.Fatalf("got %d %s envelopes, want %d", len(got), typ, n)
	}
	return got
}

// stuckReads holds the first SetReads call until its context ends (or
// the test gives up on it: release) and lets the later ones through: a
// store that stops answering one flush.
type stuckReads struct {
	core.Engine
	held    chan struct{} // closed once the first call is held
	release chan struct{}
	once    sync.Once
}

func (s *stuckReads) SetReads(ctx context.Context, reads []core.ReadPosition) error {
	first := false
	s.once.Do(func() { first = true })
	if first {
		close(s.held)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.release:
			return errors.New("released by the test")
		}
	}
	return s.Engine.SetReads(ctx, reads)
}

// A periodic read flush held by a store that does not answer does not
// hold Shutdown: Shutdown ends the flush's store call, and its own last
// flush stores the positions the held one did not.
func TestShutdownEndsStuckReadFlush(t *testing.T) {
	ctx := context.Background()
	stuck := &stuckReads{held: make(chan struct{}), release: make(chan struct{})}
	hub, store := newHubOver(t, core.Config{ReadFlush: 5 * time.Millisecond},
		func(st core.Engine) core.Engine { stuck.Engine = st; return stuck })
	if _, err := hub.Send(ctx, auth.Identity{User: "writer"}, "r", "m1", "x"); err != nil {
		t.Fatal(err)
	}
	if _, err := hub.Read(ctx, auth.Identity{User: "alice"}, "r", 1); err != nil {
		t.Fatal(err)
	}
	select {
	case <-stuck.held: // the flusher's call, which the store does not answer
	case <-time.After(30 * time.Second): // a hang, not a speed
		t.Fatal("no read flush reached the store")
	}
	done := make(chan error, 1)
	go func() { done <- hub.Shutdown(ctx) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second): // a hang, not a speed: Shutdown never returned before the fix
		close(stuck.release) // so that the test's cleanup can shut the hub down
		t.Fatal("Shutdown waits behind a read flush that its store does not answer")
	}
	if got, err := store.Reads(ctx, "r"); err != nil || got["alice"] != 1 {
		t.Fatalf("stored reads %v, %v: want alice at 1, stored by Shutdown's last flush", got, err)
	}
}
