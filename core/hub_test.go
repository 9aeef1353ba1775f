package core_test

import (
	"bytes"
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/core/bolt"
	"github.com/chatd/chatd/core/protocol"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// recorder is a Transport that keeps what it is given.
type recorder struct {
	mu     sync.Mutex
	frames []core.Frame
	closed chan core.Disconnect
	more   chan struct{}
	// hold, if set, runs at the start of each Write: a test's slow client.
	hold func()
}

func newRecorder() *recorder {
	return &recorder{closed: make(chan core.Disconnect, 1), more: make(chan struct{}, 1)}
}

func (r *recorder) Name() string { return "test" }

func (r *recorder) Write(frames []core.Frame) error {
	if r.hold != nil {
		r.hold()
	}
	r.mu.Lock()
	r.frames = append(r.frames, frames...)
	r.mu.Unlock()
	select {
	case r.more <- struct{}{}:
	default:
	}
	return nil
}

func (r *recorder) Close(d core.Disconnect) { r.closed <- d }

// waitType waits until a frame of type typ has been written, and returns it.
func (r *recorder) waitType(t *testing.T, typ string) core.Frame {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		r.mu.Lock()
		for _, f := range r.frames {
			if f.Type == typ {
				r.mu.Unlock()
				return f
			}
		}
		r.mu.Unlock()
		select {
		case <-r.more:
		case <-deadline:
			t.Fatalf("no %s frame", typ)
		}
	}
}

func newHub(t *testing.T, cfg core.Config) *core.Hub {
	hub, _ := newHubOver(t, cfg, nil)
	return hub
}

// newHubOver is newHub with the bolt engine wrapped by wrap (nil: as is).
func newHubOver(t *testing.T, cfg core.Config, wrap func(core.Engine) core.Engine) (*core.Hub, core.Engine) {
	t.Helper()
	return newHubAt(t, filepath.Join(t.TempDir(), "chat.db"), cfg, wrap)
}

// newHubAt is newHubOver over the bolt store at path.
func newHubAt(t *testing.T, path string, cfg core.Config, wrap func(core.Engine) core.Engine) (*core.Hub, core.Engine) {
	t.Helper()
	store, err := bolt.Open(bolt.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	var st core.Engine = store
	if wrap != nil {
		st = wrap(store)
	}
	hub := core.New(st, cfg)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := hub.Shutdown(ctx); err != nil {
			t.Error(err)
		}
		if err := store.Close(); err != nil {
			t.Error(err)
		}
	})
	return hub, st
}

// Shutdown closes every session with 1001 and a reconnect hint, stops the
// hub's own goroutines (heartbeats, presence leases), and refuses new
// sessions. goleak in TestMain checks nothing is left running.
func TestShutdownClosesSessionsWithHint(t *testing.T) {
	hub := newHub(t, core.Config{Heartbeat: 10 * time.Millisecond})
	id := auth.Identity{User: "alice", Name: "Alice"}
	rec := newRecorder()
	s, err := hub.Connect(id, rec, core.SessionOptions{Heartbeat: true, PresenceTTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Join(context.Background(), "general", nil, false); err != nil {
		t.Fatal(err)
	}
	rec.waitType(t, protocol.TypePing) // the hub's heartbeat ticker runs
	if err := hub.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	d := <-rec.closed
	if d.Code != protocol.CloseGoingAway || d.Reconnect <= 0 {
		t.Fatalf("disconnect %+v, want 1001 with a reconnect hint", d)
	}
	if f := rec.waitType(t, protocol.TypeDisconnect); f.Data == nil {
		t.Fatal("no disconnect envelope before the close")
	}
	if _, err := hub.Connect(id, newRecorder(), core.SessionOptions{}); err == nil {
		t.Fatal("a session was admitted after Shutdown")
	}
}

// A writer whose last batch was heartbeats only exits at once rather than
// linger: an idle node keeps no parked writer per session between
// heartbeats, and the session keeps no queue arrays. The linger here is
// an hour, so only that rule can end the writer; a frame after it starts
// a new one.
func TestHeartbeatWriterExits(t *testing.T) {
	hub := newHub(t, core.Config{Heartbeat: 20 * time.Millisecond, WriterLinger: time.Hour})
	rec := newRecorder()
	s, err := hub.Connect(auth.Identity{User: "alice", Name: "Alice"}, rec, core.SessionOptions{Heartbeat: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.Join(ctx, "general", nil, false); err != nil {
		t.Fatal(err)
	}
	rec.waitType(t, protocol.TypeJoined)
	rec.waitType(t, protocol.TypePing)
	deadline := time.Now().Add(10 * time.Second)
	for core.Writing(s) {
		if time.Now().After(deadline) {
			t.Fatal("the writer still lingers after writing heartbeats only")
		}
		time.Sleep(time.Millisecond)
	}
	if n := core.QueueCap(s); n != 0 {
		t.Fatalf("an idle session keeps queue arrays for %d frames", n)
	}
	s.HandleFrame(ctx, []byte(`{"type":"send","room":"general","id":"m1","text":"hi"}`))
	rec.waitType(t, protocol.TypeMessage)
}

// A poll-style session (PresenceTTL) keeps its user online after it
// closes, until the lease runs out; then the janitor announces them
// offline to the room.
func TestPresenceLeaseExpires(t *testing.T) {
	hub := newHub(t, core.Config{})
	watcher := newRecorder()
	w, err := hub.Connect(auth.Identity{User: "bob", Name: "Bob"}, watcher, core.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Join(context.Background(), "lobby", nil, false); err != nil {
		t.Fatal(err)
	}
	poller, err := hub.Connect(auth.Identity{User: "alice", Name: "Alice"}, newRecorder(), core.SessionOptions{PresenceTTL: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := poller.Join(context.Background(), "lobby", nil, false); err != nil {
		t.Fatal(err)
	}
	seen := func(online string) func() bool {
		return func() bool {
			watcher.mu.Lock()
			defer watcher.mu.Unlock()
			for _, f := range watcher.frames {
				if f.Type == protocol.TypePresence && contains(f.Data, `"user":"alice"`) && contains(f.Data, `"online":`+online) {
					return true
				}
			}
			return false
		}
	}
	eventuallyCore(t, "an online presence event for alice", seen("true"))
	poller.Close(core.DisconnectNormal)
	members, err := hub.Presence(context.Background(), auth.Identity{User: "bob"}, "lobby")
	if err != nil || len(members) != 2 {
		t.Fatalf("right after the poll ended: %v, %v; want alice still online", members, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		members, _ = hub.Presence(context.Background(), auth.Identity{User: "bob"}, "lobby")
		if len(members) == 1 && members[0].User == "bob" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("alice never went offline: %v", members)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// bob sees alice go, in the next presence pass.
	eventuallyCore(t, "an offline presence event for alice", seen("false"))
}

func contains(b []byte, s string) bool { return bytes.Contains(b, []byte(s)) }
