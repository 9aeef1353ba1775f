package client

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/chatd/chatd/core/protocol"
	"github.com/chatd/chatd/degrade"
)

// TestLevelsMoveEveryTier connects one client per tier preference while
// bob publishes without pause, and walks the level 0 → 1 → 2 → 3 → 0.
// Every client receives every message exactly once, in order, and ends on
// the best tier the final level allows it.
func TestLevelsMoveEveryTier(t *testing.T) {
	t.Parallel()
	const room, total = "levels", 160
	srv := newServer(t, serverOptions{degrade: true, pollInterval: 100 * time.Millisecond})
	prefs := map[string][]string{
		"ws-first":  nil, // whatever negotiate offers: websocket, sse, poll
		"sse-first": {SSE, Poll},
		"poll-only": {Poll},
	}
	want := map[string]string{"ws-first": WebSocket, "sse-first": SSE, "poll-only": Poll}
	clients := map[string]*Client{}
	for name, tiers := range prefs {
		c := start(t, testConfig(t, srv.URL, name, tiers, room))
		waitState(t, c, name+" connected", connectedOn(want[name]))
		clients[name] = c
	}

	// Each client collects its messages; the level moves as the slowest
	// one passes each mark, so every move happens with messages in flight.
	var mu sync.Mutex
	got := map[string][]protocol.Envelope{}
	received := func() int {
		mu.Lock()
		defer mu.Unlock()
		low := total
		for name := range clients {
			low = min(low, len(got[name]))
		}
		return low
	}
	var wg sync.WaitGroup
	for name, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := stepCtx(t)
			for {
				mu.Lock()
				n := len(got[name])
				mu.Unlock()
				if n == total {
					return
				}
				select {
				case e := <-c.Events():
					if e.Type == protocol.TypeMessage {
						mu.Lock()
						got[name] = append(got[name], e)
						mu.Unlock()
					}
				case <-ctx.Done():
					t.Errorf("%s: got %d of %d; state %+v", name, n, total, c.State())
					return
				}
			}
		}()
	}
	// At each mark the level moves, and the publisher waits until every
	// client is on the tier that level leaves it, messages still in flight.
	marks := []struct {
		at    int
		level degrade.Level
		tiers map[string]string
	}{
		{30, degrade.LevelNoReceipts, map[string]string{"ws-first": WebSocket, "sse-first": SSE, "poll-only": Poll}},
		{60, degrade.LevelNoWS, map[string]string{"ws-first": SSE, "sse-first": SSE, "poll-only": Poll}},
		{90, degrade.LevelPoll, map[string]string{"ws-first": Poll, "sse-first": Poll, "poll-only": Poll}},
		{120, degrade.LevelNormal, want},
	}
	deadline := time.Now().Add(60 * time.Second)
	for i := 1; i <= total; i++ {
		for received() < i-20 { // stay at most 20 ahead of the slowest client
			if time.Now().After(deadline) {
				t.Fatalf("clients stalled at %d", received())
			}
			time.Sleep(2 * time.Millisecond)
		}
		if len(marks) > 0 && i == marks[0].at {
			srv.setLevel(t, marks[0].level)
			for name, tier := range marks[0].tiers {
				l := int(marks[0].level)
				waitState(t, clients[name], fmt.Sprintf("%s on %s at level %d", name, tier, l),
					func(s State) bool { return connectedOn(tier)(s) && s.Level == l })
			}
			marks = marks[1:]
		}
		srv.post(t, "bob", room, fmt.Sprint("bob-", i), text(uint64(i)))
	}
	wg.Wait()
	for name := range clients {
		wantSeqs(t, got[name], room, 1, text)
		if len(got[name]) != total {
			t.Fatalf("%s got %d messages, want %d", name, len(got[name]), total)
		}
	}
	for name, c := range clients {
		s := waitState(t, c, name+" back on its best tier", connectedOn(want[name]))
		if s.Level != 0 {
			t.Fatalf("%s: final level %d", name, s.Level)
		}
	}
	// Nothing arrives twice after the stream: the next message each client
	// sees is a sentinel sent now.
	ack := srv.post(t, "sentinel", room, "sentinel-"+NewID(), "sentinel")
	for name, c := range clients {
		if m := recvMessages(t, c, 1)[0]; m.Seq != ack.Seq {
			t.Fatalf("%s: after the stream got #%d %q, want the sentinel #%d", name, m.Seq, m.Text, ack.Seq)
		}
	}
}
