package core_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/core/protocol"
)

// slotRecorder is a recorder that is a SlotWriter: once stall is set, its
// next write hands its slot to the test, which gives it back, and waits
// for out; other writes keep their slot to their end.
type slotRecorder struct {
	*recorder
	stall atomic.Bool
	first bool // WantsSlot says no, as for a connection's first write
	in    chan core.Slot
	out   chan struct{}
}

func (r *slotRecorder) WantsSlot() bool { return !r.first }

func (r *slotRecorder) WriteInSlot(frames []core.Frame, slot core.Slot) error {
	if r.stall.CompareAndSwap(true, false) {
		r.in <- slot // the test gives it back
		<-r.out
	} else {
		defer slot.Release()
	}
	return r.recorder.Write(frames)
}

// With one writer at work (Config.WritersRunning), a writer that holds
// the slot through its write keeps every other writer waiting, parked,
// with its queue untaken; once the write gives the slot up as one about
// to wait for its client (Slot.Blocked, counted), the next writer writes
// while the first still waits. A transport whose next write wants no
// slot (a connection's first, see SlotWriter.WantsSlot) never waits.
func TestWritersRunning(t *testing.T) {
	hub := newHub(t, core.Config{WritersRunning: 1})
	ctx := context.Background()
	stalled := &slotRecorder{recorder: newRecorder(), in: make(chan core.Slot), out: make(chan struct{})}
	plain := newRecorder()
	fresh := &slotRecorder{recorder: newRecorder(), first: true}
	var sessions []*core.Session
	for i, tr := range []core.Transport{stalled, plain, fresh} {
		s, err := hub.Connect(auth.Identity{User: []string{"alice", "bob", "dave"}[i], Name: "x"}, tr, core.SessionOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Join(ctx, "general", nil, false); err != nil {
			t.Fatal(err)
		}
		sessions = append(sessions, s)
	}
	if err := sessions[0].Join(ctx, "solo", nil, false); err != nil {
		t.Fatal(err)
	}
	stalled.waitType(t, protocol.TypeJoined)
	plain.waitType(t, protocol.TypeJoined)

	// The stalled session's writer takes the slot for a message only it
	// gets, and keeps it.
	stalled.stall.Store(true)
	send := func(room, id string) {
		t.Helper()
		if _, err := hub.Send(ctx, auth.Identity{User: "carol", Name: "Carol"}, room, id, "hi"); err != nil {
			t.Fatal(err)
		}
	}
	send("solo", "m1")
	var slot core.Slot
	select {
	case slot = <-stalled.in:
	case <-time.After(10 * time.Second):
		t.Fatal("the stalled session's writer never wrote")
	}
	send("general", "m2")
	deadline := time.Now().Add(10 * time.Second)
	for hub.Stats().WritersWaiting < 1 {
		if time.Now().After(deadline) {
			t.Fatal("no writer waits for the slot the stalled write holds")
		}
		time.Sleep(time.Millisecond)
	}
	if n := plain.messages(); n != 0 {
		t.Fatalf("%d messages written to the other session while the slot was held", n)
	}
	fresh.waitType(t, protocol.TypeMessage) // a transport that wants no slot writes meanwhile

	// The stalled write gives the slot up as one that waits for its
	// client: the other writer writes while it still waits.
	slot.Blocked()
	plain.waitType(t, protocol.TypeMessage)
	if n := stalled.messages(); n != 0 {
		t.Fatalf("the stalled write ended early: %d messages", n)
	}
	if st := hub.Stats(); st.BlockedWrites != 1 || st.WritersWaiting != 0 {
		t.Fatalf("blocked writes %d, writers waiting %d; want 1 and 0", st.BlockedWrites, st.WritersWaiting)
	}
	close(stalled.out)
	for stalled.messages() < 2 {
		select {
		case <-stalled.more:
		case <-time.After(10 * time.Second):
			t.Fatalf("the stalled session got %d of its 2 messages", stalled.messages())
		}
	}
	if n := hub.Stats().BlockedWrites; n != 1 {
		t.Fatalf("blocked writes %d after ordinary writes, want 1", n)
	}
}

// While the node relieves load (Config.Relieving), writers batch hard
// and take no slot: a write that holds the only slot keeps no other
// writer waiting.
func TestWritersUnboundedWhileRelieving(t *testing.T) {
	var relieving atomic.Bool
	hub := newHub(t, core.Config{WritersRunning: 1, Relieving: relieving.Load, RelievedWriteDelay: 2 * time.Millisecond})
	ctx := context.Background()
	stalled := &slotRecorder{recorder: newRecorder(), in: make(chan core.Slot), out: make(chan struct{})}
	plain := newRecorder()
	var sessions []*core.Session
	for i, tr := range []core.Transport{stalled, plain} {
		s, err := hub.Connect(auth.Identity{User: []string{"alice", "bob"}[i], Name: "x"}, tr, core.SessionOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Join(ctx, "general", nil, false); err != nil {
			t.Fatal(err)
		}
		sessions = append(sessions, s)
	}
	if err := sessions[0].Join(ctx, "solo", nil, false); err != nil {
		t.Fatal(err)
	}
	stalled.waitType(t, protocol.TypeJoined)
	plain.waitType(t, protocol.TypeJoined)

	stalled.stall.Store(true)
	if _, err := hub.Send(ctx, auth.Identity{User: "carol", Name: "Carol"}, "solo", "m1", "hi"); err != nil {
		t.Fatal(err)
	}
	var slot core.Slot
	select {
	case slot = <-stalled.in:
	case <-time.After(10 * time.Second):
		t.Fatal("the stalled session's writer never wrote")
	}
	relieving.Store(true)
	if _, err := hub.Send(ctx, auth.Identity{User: "carol", Name: "Carol"}, "general", "m2", "hi"); err != nil {
		t.Fatal(err)
	}
	plain.waitType(t, protocol.TypeMessage) // while the slot is still held
	if n := hub.Stats().WritersWaiting; n != 0 {
		t.Fatalf("%d writers wait for a slot while the node relieves load", n)
	}
	slot.Release()
	close(stalled.out)
	for stalled.messages() < 2 {
		select {
		case <-stalled.more:
		case <-time.After(10 * time.Second):
			t.Fatalf("the stalled session got %d of its 2 messages", stalled.messages())
		}
	}
}
