package httpapi_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/core/bolt"
)

// newHub returns a hub on a bbolt store in t's temporary directory, with
// a verifier of secret's tokens; both are closed when t ends.
func newHub(t *testing.T, secret string) (*core.Hub, *auth.Verifier, *slog.Logger) {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	store, err := bolt.Open(bolt.Config{Path: filepath.Join(t.TempDir(), "chat.db"), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	v, err := auth.NewVerifier(auth.Config{HMACSecret: []byte(secret)})
	if err != nil {
		t.Fatal(err)
	}
	hub := core.New(store, core.Config{Verifier: v, Logger: log})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hub.Shutdown(ctx)
	})
	return hub, v, log
}
