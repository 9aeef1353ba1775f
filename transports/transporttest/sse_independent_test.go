package transporttest

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"testing"

	"github.com/r3labs/sse/v2"

	"github.com/chatd/chatd/core/protocol"
)

// The SSE tier writes its event stream by hand (see transports/sse). An
// independent client, r3labs/sse's, reads it: every event's data is an
// envelope, every id our cursor, and when the server goes away and the
// client subscribes again, the library sends Last-Event-ID and the client
// gets exactly what it missed, once. The library is what this tier's
// server ran on before; it serves here as a second, independent reader.
func TestSSEIndependentClient(t *testing.T) {
	e := NewEnv(t, Options{Hub: fast})
	for range 5 {
		hubSend(t, e, "r", "before")
	}
	tok := e.Token(t, "alice", Claims{})
	var mu sync.Mutex
	var seqs []uint64
	changed := make(chan struct{}, 1)
	c := sse.NewClient(e.URL + "/v1/sse?rooms=r&since=r:0")
	c.Headers["Authorization"] = "Bearer " + tok
	c.Connection = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	handle := func(ev *sse.Event) {
		var env protocol.Envelope
		if len(ev.Data) == 0 || json.Unmarshal(ev.Data, &env) != nil {
			t.Errorf("event %q: data %q is not an envelope", ev.ID, ev.Data)
			return
		}
		if len(ev.ID) == 0 {
			t.Errorf("%s event with an empty id", env.Type)
		}
		if env.Type == protocol.TypeMessage {
			mu.Lock()
			seqs = append(seqs, env.Seq)
			mu.Unlock()
			select {
			case changed <- struct{}{}:
			default:
			}
		}
	}
	go func() {
		// The library ends a subscription on a clean end of stream; a new
		// one sends the last event id it saw as Last-Event-ID.
		for ctx.Err() == nil {
			_ = c.SubscribeRawWithContext(ctx, handle)
		}
		done <- nil
	}()
	defer func() { cancel(); <-done }()
	waitSeqs := func(n int) {
		t.Helper()
		for {
			mu.Lock()
			got := len(seqs)
			mu.Unlock()
			if got >= n {
				return
			}
			select {
			case <-changed:
			case <-Ctx(t).Done():
				t.Fatalf("the independent client got %d of %d messages", got, n)
			}
		}
	}
	waitSeqs(5)
	e.Restart(t) // the stream ends; the client comes back with Last-Event-ID
	for range 3 {
		hubSend(t, e, "r", "after")
	}
	waitSeqs(8)
	mu.Lock()
	defer mu.Unlock()
	for i, s := range seqs {
		if s != uint64(i+1) {
			t.Fatalf("the independent client got seqs %v, want 1..8 once each", seqs)
		}
	}
}
