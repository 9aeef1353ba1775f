package core_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/core/protocol"
)

type sharedKey struct{}

// sharing is a recorder that derives something from every message frame
// through Frame.Shared, counting the builds.
type sharing struct {
	*recorder
	builds *atomic.Int64
}

func (s sharing) Write(frames []core.Frame) error {
	for _, f := range frames {
		if f.Type == protocol.TypeMessage {
			f.Shared(sharedKey{}, func(data []byte) any { s.builds.Add(1); return len(data) })
		}
	}
	return s.recorder.Write(frames)
}

// A message fanned out to several sessions is derived once for all of
// them; a replayed one, once per session.
func TestSharedFrameBuiltOnce(t *testing.T) {
	ctx := context.Background()
	hub := newHub(t, core.Config{})
	var builds atomic.Int64
	var recs []*recorder
	for _, user := range []string{"a", "b", "c"} {
		rec := newRecorder()
		s, err := hub.Connect(auth.Identity{User: user}, sharing{rec, &builds}, core.SessionOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Join(ctx, "r", nil, false); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, rec)
	}
	if _, err := hub.Send(ctx, auth.Identity{User: "a"}, "r", "m1", "hi"); err != nil {
		t.Fatal(err)
	}
	for _, rec := range recs {
		waitSeq(t, rec, 1)
	}
	if n := builds.Load(); n != 1 {
		t.Fatalf("a broadcast to 3 sessions was built %d times, want once", n)
	}
}

// A control event announced through the engine reaches the listener for
// its topic, on this node too; other topics are ignored.
func TestControlReachesListener(t *testing.T) {
	hub := newHub(t, core.Config{})
	got := make(chan string, 2)
	hub.OnControl("level", func(data []byte) { got <- string(data) })
	hub.Announce(core.Control{Topic: "flags", Data: []byte("x")})
	hub.Announce(core.Control{Topic: "level", Data: []byte(`{"level":3}`)})
	if d := <-got; d != `{"level":3}` {
		t.Fatalf("listener got %q", d)
	}
	if len(got) != 0 {
		t.Fatal("a control event of another topic reached the listener")
	}
}
