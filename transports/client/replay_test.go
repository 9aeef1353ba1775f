package client

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
)

// A read receipt, a typing signal or a send by its id that goes on a
// kept-alive connection the server closes under it (its idle timeout
// crossing the request) goes again on a new connection, as net/http does
// with a request marked replayable, instead of failing with a network
// error.
func TestIdempotentPostsReplayedOnClosedKeepAlive(t *testing.T) {
	type connKey struct{}
	var (
		mu    sync.Mutex
		conns = map[*atomic.Int32]bool{}
		posts atomic.Int32
	)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		posts.Add(1)
		mu.Lock()
		conns[r.Context().Value(connKey{}).(*atomic.Int32)] = true
		mu.Unlock()
		if r.Context().Value(connKey{}).(*atomic.Int32).Add(1) == 2 {
			// The second request on a connection finds it closed, as
			// one the server's idle timeout ended just as the client
			// reused it.
			c, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				c.Close()
			}
			return
		}
		switch r.URL.Path {
		case "/v1/send":
			writeJSON(w, http.StatusOK, map[string]any{"type": "ack", "room": "r", "id": "m-1", "seq": 1})
		default:
			writeJSON(w, http.StatusOK, map[string]any{"ok": true})
		}
	}))
	srv.Config.ConnContext = func(ctx context.Context, _ net.Conn) context.Context {
		return context.WithValue(ctx, connKey{}, new(atomic.Int32))
	}
	srv.Start()
	t.Cleanup(srv.Close)

	c := New(Config{URL: srv.URL, Token: func(context.Context) (string, error) { return "t", nil }})
	ctx := t.Context()
	for i, call := range []struct {
		name string
		do   func() error
	}{
		{"read", func() error { return c.Read(ctx, "r", 1) }},
		{"read again", func() error { return c.Read(ctx, "r", 2) }},
		{"typing", func() error { return c.Typing(ctx, "r") }},
		{"send", func() error { _, err := c.SendID(ctx, "r", "m-1", "hi"); return err }},
	} {
		if err := call.do(); err != nil {
			t.Fatalf("call %d (%s): %v", i, call.name, err)
		}
	}
	// Four calls, three of them after a first on the same connection:
	// each of those went twice, the second time on a new connection.
	mu.Lock()
	n := len(conns)
	mu.Unlock()
	if got := posts.Load(); got != 7 || n != 4 {
		t.Fatalf("the server saw %d requests on %d connections, want 7 on 4", got, n)
	}
}
