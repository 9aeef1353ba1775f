package core_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/core/protocol"
)

// batches is a transport that keeps each write's frames apart.
type batches struct {
	mu     sync.Mutex
	write  [][]string           // the frame types of each write
	seqs   []uint64             // the seq of every message written, in order
	more   chan struct{}        // cap 1, if not nil: a write happened
	closed chan core.Disconnect // cap 1, if not nil: Close's
}

func (b *batches) Name() string { return "test" }

func (b *batches) Write(frames []core.Frame) error {
	types := make([]string, len(frames))
	b.mu.Lock()
	for i, f := range frames {
		types[i] = f.Type
		if f.Type == protocol.TypeMessage {
			b.seqs = append(b.seqs, f.Seq)
		}
	}
	b.write = append(b.write, types)
	b.mu.Unlock()
	select {
	case b.more <- struct{}{}:
	default:
	}
	return nil
}

func (b *batches) Close(d core.Disconnect) {
	select {
	case b.closed <- d:
	default:
	}
}

// first returns the first write that holds a frame of type typ, and the
// writes before it; ok is false while there is none.
func (b *batches) first(typ string) (got []string, before [][]string, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, w := range b.write {
		if slices.Contains(w, typ) {
			return w, b.write[:i], true
		}
	}
	return nil, nil, false
}

// rideHub has alice (writes recorded by batch) and bob in room general.
func rideHub(t *testing.T, cfg core.Config) (alice, bob *core.Session, rec *batches) {
	t.Helper()
	hub := newHub(t, cfg)
	rec = &batches{}
	ctx := context.Background()
	alice, err := hub.Connect(auth.Identity{User: "alice", Name: "Alice"}, rec, core.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.Join(ctx, "general", nil, false); err != nil {
		t.Fatal(err)
	}
	bob, err = hub.Connect(auth.Identity{User: "bob", Name: "Bob"}, newRecorder(), core.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := bob.Join(ctx, "general", nil, false); err != nil {
		t.Fatal(err)
	}
	eventuallyCore(t, "alice's joined written", func() bool { _, _, ok := rec.first(protocol.TypeJoined); return ok })
	return alice, bob, rec
}

// A typing event waits in the queue for the next message and goes out in
// its write, not in one of its own. EventDelay and WriterLinger are an
// hour, so that only the message can take it out: at once, or, while
// writes are delayed, when the write delay (50 ms, begun by the
// message's offer to the parked writer) is over.
func TestEventsRideWithMessages(t *testing.T) {
	for _, delayed := range []bool{false, true} {
		t.Run(fmt.Sprintf("delayed=%v", delayed), func(t *testing.T) {
			alice, bob, rec := rideHub(t, core.Config{EventDelay: time.Hour, WriterLinger: time.Hour})
			ctx := context.Background()
			eventuallyCore(t, "alice's writer parked", func() bool { return core.Lingering(alice) })
			bob.HandleFrame(ctx, []byte(`{"type":"typing","room":"general"}`))
			eventuallyCore(t, "typing queued for alice", func() bool {
				return slices.Contains(core.QueuedTypes(alice), protocol.TypeTyping)
			})
			if delayed {
				hub := core.HubOf(alice)
				core.SetDeliveryLatency(hub, 10*time.Second)
				if d := core.WriteDelay(hub); d != 50*time.Millisecond {
					t.Fatalf("writes wait %v, want 50 ms", d)
				}
			}
			bob.HandleFrame(ctx, []byte(`{"type":"send","room":"general","id":"m1","text":"hi"}`))
			eventuallyCore(t, "the message written to alice", func() bool { _, _, ok := rec.first(protocol.TypeMessage); return ok })
			w, before, _ := rec.first(protocol.TypeTyping)
			if !slices.Contains(w, protocol.TypeMessage) {
				t.Fatalf("typing went in a write without the message: %v (writes before: %v)", w, before)
			}
		})
	}
}

// Riding frames that fill a quarter of a holding writer's queue go at
// once, not after EventDelay (an hour here): a queue left to fill would
// drop what comes next. Four users typing fill a quarter of 16 places.
func TestEventsFillingGo(t *testing.T) {
	alice, _, rec := rideHub(t, core.Config{EventDelay: time.Hour, WriterLinger: time.Hour, QueueFrames: 16})
	eventuallyCore(t, "alice's writer parked", func() bool { return core.Lingering(alice) })
	hub := core.HubOf(alice)
	ctx := context.Background()
	for i := range 4 {
		u, err := hub.Connect(auth.Identity{User: fmt.Sprint("u", i), Name: "U"}, newRecorder(), core.SessionOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { u.Close(core.DisconnectNormal) })
		if err := u.Join(ctx, "general", nil, false); err != nil {
			t.Fatal(err)
		}
		u.HandleFrame(ctx, []byte(`{"type":"typing","room":"general"}`))
	}
	eventuallyCore(t, "typing written to alice", func() bool { _, _, ok := rec.first(protocol.TypeTyping); return ok })
	if _, _, ok := rec.first(protocol.TypeMessage); ok {
		t.Fatal("a message was written: nothing was sent")
	}
}

// With no message to ride with, a typing event goes on its own after
// EventDelay, also when the writer is parked for a longer WriterLinger.
func TestEventsGoAlone(t *testing.T) {
	_, bob, rec := rideHub(t, core.Config{EventDelay: 10 * time.Millisecond, WriterLinger: time.Hour})
	bob.HandleFrame(context.Background(), []byte(`{"type":"typing","room":"general"}`))
	eventuallyCore(t, "typing written to alice", func() bool { _, _, ok := rec.first(protocol.TypeTyping); return ok })
}
