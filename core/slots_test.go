package core_test

import (
	"context"
	"fmt"
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

// stallSetup connects a stalled slotRecorder and the others to hub, all
// in "general" and the stalled one in "solo" too, sends the stalled one
// a message only it gets, and returns the slot its writer holds for it
// (until the test gives it back) and a send to any room.
func stallSetup(t *testing.T, hub *core.Hub, others ...core.Transport) (stalled *slotRecorder, slot core.Slot, send func(room, id string)) {
	t.Helper()
	ctx := context.Background()
	stalled = &slotRecorder{recorder: newRecorder(), in: make(chan core.Slot), out: make(chan struct{})}
	for i, tr := range append([]core.Transport{stalled}, others...) {
		s, err := hub.Connect(auth.Identity{User: fmt.Sprint("user", i), Name: "x"}, tr, core.SessionOptions{})
		if err != nil {
			t.Fatal(err)
		}
		rooms := []string{"general"}
		if i == 0 {
			rooms = append(rooms, "solo")
		}
		for _, room := range rooms {
			if err := s.Join(ctx, room, nil, false); err != nil {
				t.Fatal(err)
			}
		}
	}
	stalled.waitType(t, protocol.TypeJoined)
	send = func(room, id string) {
		t.Helper()
		if _, err := hub.Send(ctx, auth.Identity{User: "carol", Name: "Carol"}, room, id, "hi"); err != nil {
			t.Fatal(err)
		}
	}
	stalled.stall.Store(true)
	send("solo", "m1")
	select {
	case slot = <-stalled.in:
	case <-time.After(10 * time.Second):
		t.Fatal("the stalled session's writer never wrote")
	}
	return stalled, slot, send
}

// finish ends r's stalled write and waits for its n messages.
func (r *slotRecorder) finish(t *testing.T, n int) {
	t.Helper()
	close(r.out)
	for r.messages() < n {
		select {
		case <-r.more:
		case <-time.After(10 * time.Second):
			t.Fatalf("the stalled session got %d of its %d messages", r.messages(), n)
		}
	}
}

// With one writer at work (Config.WritersRunning), a writer that holds
// the slot through its write keeps every other writer waiting, parked,
// with its queue untaken; once the write gives the slot up as one about
// to wait for its client (Slot.Blocked, counted), the next writer writes
// while the first still waits. A transport whose next write wants no
// slot (a connection's first, see SlotWriter.WantsSlot) never waits.
func TestWritersRunning(t *testing.T) {
	hub := newHub(t, core.Config{WritersRunning: 1})
	plain := newRecorder()
	fresh := &slotRecorder{recorder: newRecorder(), first: true}
	stalled, slot, send := stallSetup(t, hub, plain, fresh)
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
	stalled.finish(t, 2)
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
	plain := newRecorder()
	stalled, slot, send := stallSetup(t, hub, plain)
	relieving.Store(true)
	send("general", "m2")
	plain.waitType(t, protocol.TypeMessage) // while the slot is still held
	if n := hub.Stats().WritersWaiting; n != 0 {
		t.Fatalf("%d writers wait for a slot while the node relieves load", n)
	}
	slot.Release()
	stalled.finish(t, 2)
}
