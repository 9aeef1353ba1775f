package redis

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/chatd/chatd/core/redis/redistest"
)

// fill appends n messages to room through e, seqs 1..n.
func fill(t *testing.T, e *Engine, room string, n int) {
	t.Helper()
	for i := range n {
		appendOK(t, e, room, fmt.Sprint("m", i+1), uint64(i+1))
	}
}

// first returns room's oldest retained seq and its stream's length.
func first(t *testing.T, srv *redistest.Server, e *Engine, room string) (uint64, string) {
	t.Helper()
	p, err := e.Since(t.Context(), room, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	n, err := srv.Do("XLEN", e.keys.room(room).log)
	if err != nil {
		t.Fatal(err)
	}
	return p.First, n
}

// TestTrimBounded: once MaxMessages is lowered, one append prunes at most
// 256 of the oldest; the next appends go on until the room is within it.
func TestTrimBounded(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	big := open(t, srv, Config{Node: "big", MaxMessages: -1, AcceptRisk: true})
	fill(t, big, "r", 600)
	small := open(t, srv, Config{Node: "small", MaxMessages: 10, AcceptRisk: true})
	appendOK(t, small, "r", "m601", 601)
	if f, n := first(t, srv, small, "r"); f != 257 || n != ":345" {
		t.Fatalf("after one append: first %d, stream length %s; want 257 and 345 (256 pruned)", f, n)
	}
	appendOK(t, small, "r", "m602", 602)
	appendOK(t, small, "r", "m603", 603)
	if f, n := first(t, srv, small, "r"); f != 594 || n != ":10" {
		t.Fatalf("after three appends: first %d, stream length %s; want 594 and 10", f, n)
	}
}

// TestSweepBatches: the age sweep prunes a room beyond one script's batch
// (512) in one Sweep, trimming the stream (no entries left behind) and
// forgetting the ids.
func TestSweepBatches(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	e := open(t, srv, Config{MaxAge: time.Hour, AcceptRisk: true, Now: func() time.Time { return now }})
	fill(t, e, "r", 600)
	now = now.Add(2 * time.Hour)
	if err := e.Sweep(); err != nil {
		t.Fatalf("Sweep: %v", err)
	}
	if f, n := first(t, srv, e, "r"); f != 601 || n != ":0" {
		t.Fatalf("after the sweep: first %d, stream length %s; want 601 and 0", f, n)
	}
	if n, err := srv.Do("HLEN", e.keys.room("r").ids); err != nil || n != ":0" {
		t.Fatalf("ids left after the sweep: %q, %v", n, err)
	}
}

// TestClientLogger: go-redis's lines go to the slog.Logger, at warn,
// marked as go-redis's, without its own "redis: " lead.
func TestClientLogger(t *testing.T) {
	var buf bytes.Buffer
	l := clientLogger{slog.New(slog.NewTextHandler(&buf, nil))}
	l.Printf(context.Background(), "redis: connection pool: failed to dial after %d attempts", 1)
	got := buf.String()
	for _, want := range []string{"level=WARN", `msg="go-redis: connection pool: failed to dial after 1 attempts"`, "component=go-redis"} {
		if !strings.Contains(got, want) {
			t.Errorf("logged %q, want %s in it", got, want)
		}
	}
}
