package httpapi_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/transports/httpapi"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestReadyzFollowsHealth: /readyz answers 503 unavailable while the
// engine's Health fails, and 200 again once it recovers.
func TestReadyzFollowsHealth(t *testing.T) {
	hub, v, log := newHub(t, "readyz-test-secret-0123456789abcd")
	var down atomic.Bool
	api := httpapi.New(httpapi.Config{Hub: hub, Verifier: v, Tickets: auth.NewTickets(nil, time.Minute, nil),
		Logger: log, Health: func() error {
			if down.Load() {
				return errors.New("redis: connection refused")
			}
			return nil
		}})
	api.SetReady(true)
	srv := httptest.NewServer(api.Handler())
	defer srv.Close()
	get := func() (int, string) {
		resp, err := http.Get(srv.URL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct{ Code, Message string }
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body.Code
	}
	if code, _ := get(); code != http.StatusOK {
		t.Fatalf("healthy: %d", code)
	}
	down.Store(true)
	if code, wire := get(); code != http.StatusServiceUnavailable || wire != "unavailable" {
		t.Fatalf("engine down: %d %q, want 503 unavailable", code, wire)
	}
	down.Store(false)
	if code, _ := get(); code != http.StatusOK {
		t.Fatalf("recovered: %d", code)
	}
}
