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
