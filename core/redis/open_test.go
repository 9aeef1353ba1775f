package redis

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/chatd/chatd/core/redis/redistest"
)

// TestPersistenceCheck: Open refuses a Redis that acknowledges writes
// before they are on disk, saying how to fix it, unless AcceptRisk.
func TestPersistenceCheck(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	_, err := Open(t.Context(), Config{URL: srv.URL(), Prefix: prefixOf(t.Name())})
	if !errors.Is(err, ErrNotDurable) {
		t.Fatalf("Open on a server without AOF: %v, want ErrNotDurable", err)
	}
	for _, want := range []string{`appendonly "no"`, "CONFIG SET appendonly yes; CONFIG SET appendfsync always", "accept-risk"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	e := open(t, srv, Config{AcceptRisk: true})
	if err := e.Health(); err != nil {
		t.Fatalf("Health() with AcceptRisk: %v", err)
	}
}

// TestOpenUnreachable: Open fails within its timeout, unavailable, when
// nothing listens.
func TestOpenUnreachable(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{Durable: true})
	srv.Kill()
	_, err := Open(t.Context(), Config{URL: srv.URL(), Timeout: 300 * time.Millisecond})
	wantUnavailable(t, "Open with nothing listening", err)
	if _, err := Open(t.Context(), Config{}); err == nil {
		t.Fatal("Open without a URL succeeded")
	}
	if _, err := Open(t.Context(), Config{URL: srv.URL(), Prefix: "a{b"}); err == nil {
		t.Fatal("Open with a brace in the prefix succeeded")
	}
}
