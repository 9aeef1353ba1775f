package redis

import (
	"fmt"
	"hash/fnv"
	"log/slog"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/chatd/chatd/core/brokertest"
	"github.com/chatd/chatd/core/protocol"
	"github.com/chatd/chatd/core/redis/redistest"
)

// TestMain routes go-redis's own lines (dial failures while a test has
// Redis down) through slog, as main does.
func TestMain(m *testing.M) {
	SetClientLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	goleak.VerifyTestMain(m)
}

// waitTimeout bounds every wait in these tests. It is a failure deadline,
// not a synchronisation: tests wait on events.
const waitTimeout = 20 * time.Second

// prefixOf derives a key prefix from a test's data directory, so that
// an engine opened again on the same directory sees the same data.
func prefixOf(dir string) string {
	h := fnv.New64a()
	h.Write([]byte(dir))
	return fmt.Sprintf("t%x", h.Sum64())
}

// open opens an engine on srv for the test, closed at its end. cfg.URL
// defaults to srv's TCP URL and cfg.Prefix to one of the test's own.
func open(t *testing.T, srv *redistest.Server, cfg Config) *Engine {
	t.Helper()
	if cfg.URL == "" {
		cfg.URL = srv.URL()
	}
	if cfg.Prefix == "" {
		cfg.Prefix = prefixOf(t.Name())
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	e, err := Open(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// recorder is brokertest's recording handler, with the seq checks these
// tests make.
type recorder struct{ *brokertest.Recorder }

func newRecorder() *recorder { return &recorder{brokertest.NewRecorder()} }

// fence broadcasts a typing envelope from e in room and waits until rec,
// e's handler, has it: e's subscription to room is then in force, and
// everything e received before is delivered.
func fence(t *testing.T, e *Engine, rec *recorder, room string) {
	t.Helper()
	user := fmt.Sprint("fence-", fences.Add(1))
	e.Broadcast(room, protocol.Envelope{Type: protocol.TypeTyping, Room: room, User: user})
	rec.Until(t, "the fence "+user, func() bool {
		for _, env := range rec.Events {
			if env.User == user {
				return true
			}
		}
		return false
	})
}

var fences atomic.Int64

// seqs returns the seqs delivered in room, in order. Called within Until.
func (r *recorder) seqs(room string) []uint64 {
	var out []uint64
	for _, m := range r.Msgs {
		if m.Room == room {
			out = append(out, m.Seq)
		}
	}
	return out
}

// wait waits until room's delivered seqs are exactly 1..n, failing as
// soon as they go wrong and after brokertest.WaitTimeout if they never
// arrive.
func (r *recorder) wait(t *testing.T, room string, n int) {
	t.Helper()
	var got []uint64
	wrong := false
	r.Until(t, fmt.Sprintf("room %s: delivered seqs 1..%d", room, n), func() bool {
		got = r.seqs(room)
		for i, s := range got {
			wrong = wrong || s != uint64(i+1)
		}
		wrong = wrong || len(got) > n
		return wrong || len(got) == n
	})
	if wrong {
		t.Fatalf("room %s: delivered seqs %v, want 1..%d each once, in order", room, got, n)
	}
}

// reconnects returns a channel that receives each time e calls its
// OnReconnect callbacks.
func reconnects(e *Engine) <-chan struct{} {
	ch := make(chan struct{}, 16)
	e.OnReconnect(func() { ch <- struct{}{} })
	return ch
}

// receive waits for ch, failing after waitTimeout.
func receive[T any](t *testing.T, what string, ch <-chan T) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(waitTimeout):
		t.Fatalf("timed out waiting for %s", what)
	}
}

func testMsg(room, id string) protocol.Message {
	return protocol.Message{Room: room, ID: id, From: "u", Name: "U", Text: "text of " + id}
}

// appendOK appends a new message and fails the test unless it is stored
// with seq want.
func appendOK(t *testing.T, e *Engine, room, id string, want uint64) protocol.Message {
	t.Helper()
	m, dup, err := e.Append(t.Context(), testMsg(room, id))
	if err != nil || dup || m.Seq != want {
		t.Fatalf("Append(%s, %s) = seq %d dup %v err %v; want a new seq %d", room, id, m.Seq, dup, err, want)
	}
	return m
}
