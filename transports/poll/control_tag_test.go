package poll_test

import (
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/protocol"
	"github.com/chatd/chatd/degrade"
	"github.com/chatd/chatd/transports/poll"
	"github.com/chatd/chatd/transports/transporttest"
)

// An answer carries the control and its tag unless the poll names the
// tag of the control in force (control_tag=): then it leaves both out,
// unless a control envelope is among its events. A new control comes
// with a new tag. Each seq still arrives once, in order. Poll only: the
// control field is the poll tier's (WebSocket and SSE clients get
// control envelopes as frames, when they change).
func TestControlTag(t *testing.T) {
	const room = "tag"
	e := transporttest.NewEnv(t, transporttest.Options{Hub: fast})
	var level atomic.Int64
	cfg := poll.Config{ControlWire: func(string) ([]byte, uint64) {
		w := degrade.NewControlWire(protocol.Envelope{Type: protocol.TypeControl, Level: protocol.Ptr(int(level.Load()))})
		return w.Data, w.Tag
	}}
	cfg.Hold, cfg.Keep = 10*time.Second, 5*time.Second
	_, base, _ := server(t, e, cfg)
	tok := e.Token(t, "tess", transporttest.Claims{})
	withTag := func(q url.Values, tag string) url.Values { q.Set("control_tag", tag); return q }
	s := &seqs{room: room}

	a := get(t, base, tok, start(room))
	if a.Control == nil || a.ControlTag == "" {
		t.Fatalf("first answer: control %+v, tag %q; want both", a.Control, a.ControlTag)
	}
	tag0 := a.ControlTag

	// The tag of the control in force: no control.
	send(t, e, room, 1)
	a = get(t, base, tok, withTag(from(room, a.Cursor), tag0))
	s.mustTake(t, "tagged", a, 1)
	if a.Control != nil || a.ControlTag != "" {
		t.Fatalf("poll naming the control in force: control %+v, tag %q; want neither", a.Control, a.ControlTag)
	}
	// Another tag, or none a server writes: the control.
	for _, other := range []string{"1", "not-a-tag", "00000000000000001"} {
		send(t, e, room, 1)
		a = get(t, base, tok, withTag(from(room, a.Cursor), other))
		s.mustTake(t, "tag "+other, a, 1)
		if a.Control == nil || a.ControlTag != tag0 {
			t.Fatalf("poll naming %q: control %+v, tag %q; want the control, tag %q", other, a.Control, a.ControlTag, tag0)
		}
	}

	// A new control: a new tag, and the old one no longer hides it.
	level.Store(2)
	send(t, e, room, 1)
	a = get(t, base, tok, withTag(from(room, a.Cursor), tag0))
	s.mustTake(t, "new level", a, 1)
	if a.Control == nil || a.Control.Level == nil || *a.Control.Level != 2 || a.ControlTag == "" || a.ControlTag == tag0 {
		t.Fatalf("after a level change: control %+v, tag %q (old %q); want level 2 with a new tag", a.Control, a.ControlTag, tag0)
	}
	tag2 := a.ControlTag

	// A control among the events: the answer ends on the control
	// in force, even for a poll that names it.
	// The session kept from the last answer gets the envelope, and
	// the next poll carries on with it.
	var notified int
	e.Hub.ForEachSession(func(s *core.Session) {
		notified++
		s.Notify(protocol.Envelope{Type: protocol.TypeControl, Level: protocol.Ptr(1)})
	})
	if notified != 1 {
		t.Fatalf("%d sessions, want the one kept", notified)
	}
	a = get(t, base, tok, withTag(from(room, a.Cursor), tag2))
	if len(a.Events) == 0 || a.Events[len(a.Events)-1].Type != protocol.TypeControl {
		t.Fatalf("events %+v: want the control envelope", a.Events)
	}
	if a.Control == nil || a.Control.Level == nil || *a.Control.Level != 2 || a.ControlTag != tag2 {
		t.Fatalf("answer with a control among its events: control %+v, tag %q; want level 2, tag %q", a.Control, a.ControlTag, tag2)
	}
	send(t, e, room, 2)
	s.until(t, base, tok, a, 7)
}
