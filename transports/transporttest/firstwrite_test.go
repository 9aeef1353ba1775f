package transporttest

import (
	"testing"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/core/protocol"
)

// With one writer at work (core.Config.WritersRunning) and that one
// writer's slot held by another session's write, a client connecting on
// any transport still gets its first write, the answer to its connect:
// a connection's first write takes no slot (core.SlotWriter.WantsSlot),
// so that in a storm of reconnects no client waits for the others'
// writes to be answered (a poll session's writes take no slot at all:
// its transport only keeps frames for the next answer). Once the slot is
// given back, the client's next writes (a message) follow as usual.
// Without the exemption the WebSocket and SSE dials wait for the slot
// until their context ends.
func TestFirstWriteTakesNoSlot(t *testing.T) { Run(t, testFirstWriteTakesNoSlot) }

func testFirstWriteTakesNoSlot(t *testing.T, dial Dialer) {
	const room = "lobby"
	cfg := fast
	cfg.WritersRunning = 1
	e := NewEnv(t, Options{Hub: cfg})

	hog := &slotHog{taken: make(chan struct{}), done: make(chan struct{})}
	sess, err := e.Hub.Connect(auth.Identity{User: "hog", Name: "Hog"}, hog, core.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	released := false
	release := func() {
		if !released {
			released = true
			close(hog.done)
		}
	}
	t.Cleanup(func() {
		release()
		sess.Close(core.DisconnectNormal)
	})
	ctx := Ctx(t)
	if err := sess.Join(ctx, "hogs", nil, false); err != nil { // its joined reply's write
		t.Fatal(err)
	}
	select {
	case <-hog.taken: // holds the only slot
	case <-ctx.Done():
		t.Fatal("the other session's write never took the slot")
	}

	// The dial returns once the client has its room's joined reply: on
	// SSE and poll the answer to the connect itself (rooms= in the URL),
	// on WebSocket the reply to its first frame, the connection's first
	// write either way.
	c := dial(t, e, e.Token(t, "late", Claims{}), []Join{{Room: room, Since: ptr(0)}})

	release()
	other := dial(t, e, e.Token(t, "other", Claims{}), []Join{{Room: room, Since: ptr(0)}})
	ack, err := other.Send(ctx, room, "m1", "after the slot came back")
	if err != nil || ack.Type != protocol.TypeAck {
		t.Fatalf("send: %+v, %v", ack, err)
	}
	if got := nextOf(t, c, protocol.TypeMessage); got.Text != "after the slot came back" {
		t.Fatalf("got %+v, want the message sent once the slot was back", got)
	}
}

// slotHog is a session's transport whose writes keep their writer's slot
// until done closes: taken hears that the first has it.
type slotHog struct {
	taken chan struct{} // closed once a write holds the slot
	done  chan struct{} // closed to end the writes
	once  bool          // taken is closed; owned by the writer
}

func (*slotHog) Name() string             { return "test" }
func (*slotHog) Write([]core.Frame) error { return nil }
func (*slotHog) Close(core.Disconnect)    {}
func (*slotHog) WantsSlot() bool          { return true }
func (h *slotHog) WriteInSlot(_ []core.Frame, slot core.Slot) error {
	if !h.once {
		h.once = true
		close(h.taken)
	}
	<-h.done
	slot.Release()
	return nil
}

var _ core.SlotWriter = (*slotHog)(nil)
