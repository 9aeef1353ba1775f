package poll

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/core/bolt"
	"github.com/chatd/chatd/core/protocol"
	"github.com/chatd/chatd/transports/httpx"
)

// TestLazyCountWaitsForNews: in a room above PresenceMaxMembers the hub
// announces the online count; that frame neither makes a poll's answer
// due nor signals a held poll, a newer count replaces the one waiting,
// and the count goes out with the next answer that news brings. Frames
// come from a real hub, through the conn as the session's transport.
func TestLazyCountWaitsForNews(t *testing.T) {
	store, err := bolt.Open(bolt.Config{Path: filepath.Join(t.TempDir(), "chat.db")})
	if err != nil {
		t.Fatal(err)
	}
	hub := core.New(store, core.Config{PresenceMaxMembers: 1, PresenceInterval: 5 * time.Millisecond,
		SendRate: 1e6, SendBurst: 1e6})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = hub.Shutdown(ctx)
		_ = store.Close()
	})
	ctx := context.Background()
	const room = "big"
	h := New(Config{Hub: hub, Auth: &httpx.Authenticator{}, MaxEvents: 100})
	c := &spy{conn: newConn(h), wrote: make(chan core.Frame, 64)}

	// join brings one more user online in room and returns once the hub
	// has it online.
	join := func(user string) {
		t.Helper()
		s, err := hub.Connect(auth.Identity{User: user, Name: user}, newConn(h), core.SessionOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close(core.DisconnectNormal) })
		if err := s.Join(ctx, room, nil, false); err != nil {
			t.Fatal(err)
		}
	}
	// Two users are online before lea joins, so every presence frame she
	// can be sent is a count: with one user online the room would send
	// per-user presence, and whether lea saw it would depend on when the
	// hub's presence pass ran. The count of 3 may reach her or not (a
	// pass during her catch-up sends it before she is live); each count
	// from here on, once her Join has returned, does.
	join("ann")
	join("bob")
	lea := auth.Identity{User: "lea", Name: "Lea"}
	sess, err := hub.Connect(lea, c, core.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c.sess = sess
	if err := sess.Join(ctx, room, nil, false); err != nil {
		t.Fatal(err)
	}
	c.await(t, "the joined envelope", func(f core.Frame) bool { return f.Type == protocol.TypeJoined })
	if !c.pending() {
		t.Fatal("the joined envelope is not due")
	}
	releaseFrames(c.seal())

	// counts returns the presence counts waiting in c's next answer.
	counts := func() []int {
		c.mu.Lock()
		defer c.mu.Unlock()
		var out []int
		for _, f := range framesOf(c.frames) {
			if f.Type == protocol.TypePresence {
				out = append(out, countOf(t, f))
			}
		}
		return out
	}
	join("cat")
	c.await(t, "a count of 4", isCount(t, 4))
	if c.pending() {
		t.Fatal("a presence count alone made the answer due")
	}
	select {
	case <-c.notify:
		t.Fatal("a presence count alone signalled the held poll")
	default:
	}
	join("dan")
	c.await(t, "a count of 5", isCount(t, 5))
	if got := counts(); len(got) != 1 || got[0] != 5 {
		t.Fatalf("counts waiting = %v, want only the latest, 5", got)
	}

	if _, err := hub.Send(ctx, auth.Identity{User: "bob", Name: "bob"}, room, "m1", "hello"); err != nil {
		t.Fatal(err)
	}
	c.await(t, "the message", func(f core.Frame) bool { return f.Type == protocol.TypeMessage })
	if !c.pending() {
		t.Fatal("a message did not make the answer due")
	}
	answer := c.seal()
	defer releaseFrames(answer)
	var types []string
	for _, f := range framesOf(answer) {
		types = append(types, f.Type)
	}
	if len(types) != 2 || types[0] != protocol.TypePresence || types[1] != protocol.TypeMessage {
		t.Fatalf("the answer carries %v, want the count, then the message", types)
	}
}

// spy is the poll conn as a session's transport, reporting each frame
// once the conn has taken it, from the writer or inline.
type spy struct {
	*conn
	wrote chan core.Frame
}

func (s *spy) Write(frames []core.Frame) error {
	err := s.conn.Write(frames)
	for _, f := range frames {
		s.wrote <- f
	}
	return err
}

func (s *spy) WriteInline(f core.Frame) bool {
	if !s.conn.WriteInline(f) {
		return false
	}
	s.wrote <- f
	return true
}

// await waits until the conn has taken a frame for which ok holds.
func (s *spy) await(t *testing.T, what string, ok func(core.Frame) bool) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case f := <-s.wrote:
			if ok(f) {
				return
			}
		case <-timeout:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// isCount returns a test for a presence count of n; any count it sees
// must be lazy.
func isCount(t *testing.T, n int) func(core.Frame) bool {
	return func(f core.Frame) bool {
		if f.Type != protocol.TypePresence {
			return false
		}
		var e protocol.Envelope
		if err := json.Unmarshal(f.Data, &e); err != nil {
			t.Fatalf("presence frame %s: %v", f.Data, err)
		}
		return e.Count != nil && countOf(t, f) == n
	}
}

// countOf decodes a presence count frame, which must be lazy.
func countOf(t *testing.T, f core.Frame) int {
	t.Helper()
	var e protocol.Envelope
	if err := json.Unmarshal(f.Data, &e); err != nil || e.Count == nil {
		t.Fatalf("presence frame %s: %v; want a count", f.Data, err)
	}
	if !f.Lazy() {
		t.Fatalf("a presence count that is not lazy: %s", f.Data)
	}
	return *e.Count
}
