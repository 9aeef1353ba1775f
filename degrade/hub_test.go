package degrade

import (
	"context"
	"encoding/json"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/core/bolt"
	"github.com/chatd/chatd/core/protocol"
)

// newHub returns a real hub over a bolt store in a temporary directory,
// shut down and closed when the test ends.
func newHub(t *testing.T) *core.Hub {
	t.Helper()
	store, err := bolt.Open(bolt.Config{Path: filepath.Join(t.TempDir(), "chat.db")})
	if err != nil {
		t.Fatal(err)
	}
	hub := core.New(store, core.Config{})
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
	return hub
}

// fakeConn is a core.Transport under any transport name. It records what
// it is given, and fails every write with fail when that is set.
type fakeConn struct {
	name string // Static after construction.
	fail error  // Static after construction.

	mu     sync.Mutex
	frames []core.Frame     // Guarded by mu.
	closed *core.Disconnect // Guarded by mu.
}

var _ core.Transport = (*fakeConn)(nil)

func (c *fakeConn) Name() string { return c.name }

func (c *fakeConn) Write(frames []core.Frame) error {
	if c.fail != nil {
		return c.fail
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.frames = append(c.frames, frames...)
	return nil
}

func (c *fakeConn) Close(d core.Disconnect) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = &d
}

// controls returns the control envelopes written so far.
func (c *fakeConn) controls(t *testing.T) []protocol.Envelope {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []protocol.Envelope
	for _, f := range c.frames {
		if f.Type != protocol.TypeControl {
			continue
		}
		var e protocol.Envelope
		if err := json.Unmarshal(f.Data, &e); err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

func (c *fakeConn) closedWith() *core.Disconnect {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// connect opens a session for user over c.
func connect(t *testing.T, hub *core.Hub, user string, c *fakeConn) *core.Session {
	t.Helper()
	s, err := hub.Connect(auth.Identity{User: user}, c, core.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// waitDone waits for s to have closed its transport.
func waitDone(t *testing.T, s *core.Session) {
	t.Helper()
	select {
	case <-s.Done():
	case <-time.After(10 * time.Second):
		t.Fatalf("session %d never closed", s.ID())
	}
}

// flush waits until everything queued on s has been written.
func flush(t *testing.T, s *core.Session) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

// eventually polls cond until it holds or a deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond) // polling interval, not synchronisation
	}
}
