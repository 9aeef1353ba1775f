package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatd/chatd/featureflags"
	"github.com/chatd/chatd/featureflags/rollout"
)

// rolloutAPI serves the admin API's rollout routes, as the server will,
// from a real Manager on a real flag store and plan file. It is a fake of
// those routes only: auth is one fixed token.
type rolloutAPI struct {
	m     *rollout.Manager
	flags *featureflags.Store
	clock *testClock
}

const adminToken = "admin-token"

func newRolloutAPI(t *testing.T) (*rolloutAPI, string) {
	t.Helper()
	a := &rolloutAPI{clock: &testClock{now: time.Now()}}
	a.flags = featureflags.NewStore(featureflags.Config{Logger: slog.New(slog.DiscardHandler)})
	a.m = rollout.NewManager(rollout.Config{Flags: a.flags, Store: rollout.NewFileStore(t.TempDir()),
		Clock: a.clock, Logger: slog.New(slog.DiscardHandler)})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/admin/rollouts", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"rollouts": a.m.Plans()})
	})
	mux.HandleFunc("POST /v1/admin/rollouts", func(w http.ResponseWriter, r *http.Request) {
		var req rollout.StartRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			writeError(w, &rollout.ValidationError{Field: "body", Reason: err.Error()})
			return
		}
		p, err := a.m.Start(r.Context(), req, "admin:ops")
		answer(w, p, err)
	})
	mux.HandleFunc("POST /v1/admin/rollouts/{flag}/{op}", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			ToZero bool `json:"to_zero"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			writeError(w, &rollout.ValidationError{Field: "body", Reason: err.Error()})
			return
		}
		flag := r.PathValue("flag")
		var p rollout.Plan
		var err error
		switch r.PathValue("op") {
		case "pause":
			p, err = a.m.Pause(r.Context(), flag, "admin:ops")
		case "resume":
			p, err = a.m.Resume(r.Context(), flag, "admin:ops")
		case "abort":
			p, err = a.m.Abort(r.Context(), flag, "admin:ops", body.ToZero)
		default:
			http.NotFound(w, r)
			return
		}
		answer(w, p, err)
	})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+adminToken {
			writeJSON(w, http.StatusForbidden, map[string]string{"type": "error", "code": "forbidden", "message": "admin only"})
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return a, srv.URL
}

func answer(w http.ResponseWriter, p rollout.Plan, err error) {
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

// writeError maps the rollout errors as the admin API does.
func writeError(w http.ResponseWriter, err error) {
	var verr *rollout.ValidationError
	status, code := http.StatusServiceUnavailable, "unavailable"
	switch {
	case errors.As(err, &verr):
		status, code = http.StatusBadRequest, "bad_request"
	case errors.Is(err, rollout.ErrNotFound):
		status, code = http.StatusNotFound, "not_found"
	case errors.Is(err, rollout.ErrExists), errors.Is(err, rollout.ErrState):
		status, code = http.StatusConflict, "conflict"
	}
	writeJSON(w, status, map[string]string{"type": "error", "code": code, "message": err.Error()})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	return c.now
}

func (c *testClock) NewTicker(time.Duration) (<-chan time.Time, func()) { return nil, func() {} }

func TestRolloutCommands(t *testing.T) {
	a, base := newRolloutAPI(t)
	rr := featureflags.ReadReceipts

	code, out, errs := ctl(base, adminToken, "rollout", "status")
	if code != 0 || strings.TrimSpace(out) != "no rollout plans" {
		t.Fatalf("status with none: %d %q %s", code, out, errs)
	}
	code, out, errs = ctl(base, adminToken, "rollout", "start", rr, "--steps", "10,50,100", "--hold", "24h", "--window", "30m",
		"--guards", `{"errors":{"ratio":3}}`)
	if code != 0 || !regexp.MustCompile(`read_receipts\s+running\s+10%\s+1/3\s+10,50,100\s+24h0m0s\s+in 2[34]h`).MatchString(out) {
		t.Fatalf("start: %d\n%s%s", code, out, errs)
	}
	p := a.m.Plans()[0]
	if time.Duration(p.Window) != 30*time.Minute || p.Guards.Errors.Ratio != 3 || p.Guards.Errors.Floor != 0.05 {
		t.Fatalf("the server got window %v, guards %+v", time.Duration(p.Window), p.Guards)
	}
	if f, _ := a.flags.Snapshot().Get(rr); f.Rollout != 10 {
		t.Fatalf("flag at %d after start", f.Rollout)
	}

	// A day later the plan steps up; status shows it, with the guards.
	ctx := context.Background()
	a.m.Tick(ctx, a.clock.Now()) // the guards start watching
	a.m.Tick(ctx, a.clock.advance(24*time.Hour))
	code, out, _ = ctl(base, adminToken, "rollout", "status")
	if code != 0 || !regexp.MustCompile(`read_receipts\s+running\s+50%\s+2/3\s.*\s10%\s+admin:ops`).MatchString(out) ||
		!strings.Contains(out, "read_receipts guards: errors waiting (inside 0.0% of 0, outside 0.0% of 0)") {
		t.Fatalf("status after a day:\n%s", out)
	}

	code, out, _ = ctl(base, adminToken, "rollout", "pause", rr)
	if code != 0 || !regexp.MustCompile(`read_receipts\s+paused\s+50%`).MatchString(out) {
		t.Fatalf("pause: %d\n%s", code, out)
	}
	code, out, _ = ctl(base, adminToken, "rollout", "resume", rr)
	if code != 0 || !regexp.MustCompile(`read_receipts\s+running\s+50%`).MatchString(out) {
		t.Fatalf("resume: %d\n%s", code, out)
	}
	code, out, _ = ctl(base, adminToken, "--json", "rollout", "abort", rr)
	var aborted rollout.Plan
	if code != 0 || json.Unmarshal([]byte(out), &aborted) != nil || aborted.State != rollout.Aborted || aborted.Percent != 10 {
		t.Fatalf("abort --json: %d %s", code, out)
	}
	if f, _ := a.flags.Snapshot().Get(rr); f.Rollout != 10 {
		t.Fatalf("flag at %d after abort, want the last good 10", f.Rollout)
	}
	code, out, _ = ctl(base, adminToken, "rollout", "start", rr, "--steps", "5", "--hold", "1h")
	if code != 0 {
		t.Fatalf("restart after abort: %d %s", code, out)
	}
	code, out, _ = ctl(base, adminToken, "rollout", "abort", rr, "--to-zero")
	if code != 0 || !regexp.MustCompile(`read_receipts\s+aborted\s+0%\s+0/1`).MatchString(out) {
		t.Fatalf("abort --to-zero: %d\n%s", code, out)
	}

	// The server's errors come back with its code; bad usage is exit 2.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"rollout", "start", "nope", "--steps", "10", "--hold", "1h"}, "bad_request"},
		{[]string{"rollout", "start", rr, "--steps", "50,10", "--hold", "1h"}, "bad_request"},
		{[]string{"rollout", "start", rr, "--steps", "10,150", "--hold", "1h"}, "bad_request"},
		{[]string{"rollout", "start", rr, "--steps", "10", "--hold", "1h", "--window", "2h"}, "bad_request"},
		{[]string{"rollout", "pause", featureflags.Typing}, "not_found"},
		{[]string{"rollout", "resume", rr}, "conflict"},
	} {
		if code, _, errs := ctl(base, adminToken, c.args...); code != 1 || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d, %q; want 1 and %s", c.args, code, errs, c.want)
		}
	}
	if code, _, errs := ctl(base, "not-admin", "rollout", "status"); code != 1 || !strings.Contains(errs, "forbidden") {
		t.Errorf("non-admin: %d %s", code, errs)
	}
	for _, args := range [][]string{
		{"rollout"},
		{"rollout", "start", rr},
		{"rollout", "start", rr, "--steps", "10,x", "--hold", "1h"},
		{"rollout", "start", rr, "--steps", "10", "--hold", "0s"},
		{"rollout", "start", rr, "--steps", "10", "--hold", "1h", "--guards", "{"},
		{"rollout", "pause"},
		{"rollout", "abort", rr, "--now"},
		{"rollout", "bounce", rr},
	} {
		if code, _, _ := ctl(base, adminToken, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}
