package client

import (
	"fmt"
	"testing"

	"github.com/chatd/chatd/core/protocol"
	"github.com/chatd/chatd/degrade"
)

// step is a tier move made once the client has received at messages: do
// starts it, and the client must then connect on tier.
type step struct {
	at   int
	do   func()
	tier string
}

// streamWithMoves has bob publish total messages while the client is
// moved by steps, and checks that the client receives each message
// exactly once, in order, and ran on every tier the steps name.
func streamWithMoves(t *testing.T, srv *testServer, c *Client, room string, total int, steps []step) {
	t.Helper()
	const window = 20
	// The publisher stays at most window messages ahead of the receiver,
	// so that messages are in flight during every move.
	credit := make(chan struct{}, total+window)
	for range window {
		credit <- struct{}{}
	}
	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		ctx := stepCtx(t)
		for i := uint64(1); i <= uint64(total); i++ {
			select {
			case <-credit:
			case <-ctx.Done():
				t.Errorf("publisher starved at %d", i)
				return
			}
			srv.post(t, "bob", room, fmt.Sprint("bob-", i), text(i))
		}
	}()
	defer func() { <-pubDone }()

	used := map[string]bool{}
	moving := "" // the tier being moved to
	var got []protocol.Envelope
	ctx := stepCtx(t)
	for len(got) < total || moving != "" {
		if moving != "" && connectedOn(moving)(c.State()) {
			used[moving], moving = true, ""
		}
		if moving == "" && len(steps) > 0 && len(got) >= steps[0].at {
			moving = steps[0].tier
			steps[0].do()
			steps = steps[1:]
		}
		select {
		case e := <-c.Events():
			if e.Type == protocol.TypeMessage {
				got = append(got, e)
				credit <- struct{}{}
			}
		case s := <-c.States():
			if moving != "" && connectedOn(moving)(s) {
				used[moving], moving = true, ""
			}
		case <-ctx.Done():
			t.Fatalf("got %d of %d messages, moving to %q; state %+v", len(got), total, moving, c.State())
		}
	}
	wantSeqs(t, got, room, 1, text)
	if len(steps) > 0 {
		t.Fatalf("moves left undone: %d", len(steps))
	}
	t.Logf("ran on %v", used)
	<-pubDone
	wantNoMore(t, srv, c, room)
}

// TestTierMoves moves the client ws → sse → poll → ws with SwitchTransport
// while another user publishes a steady stream.
func TestTierMoves(t *testing.T) {
	t.Parallel()
	srv := newServer(t, serverOptions{})
	c := start(t, testConfig(t, srv.URL, "alice", nil, "stream"))
	waitState(t, c, "websocket connected", connectedOn(WebSocket))
	sw := func(tier string) func() {
		return func() {
			if err := c.SwitchTransport(tier); err != nil {
				t.Fatal(err)
			}
		}
	}
	streamWithMoves(t, srv, c, "stream", 150, []step{
		{30, sw(SSE), SSE}, {60, sw(Poll), Poll}, {90, sw(WebSocket), WebSocket},
	})
}

// TestDegradeLevels lets the server move the client: level 2 turns
// WebSocket off (a control envelope, then close 4001) and the client
// resumes on SSE; level 0 invites it back up, and it moves to WebSocket
// on its own. The stream goes on throughout.
func TestDegradeLevels(t *testing.T) {
	t.Parallel()
	srv := newServer(t, serverOptions{degrade: true})
	c := start(t, testConfig(t, srv.URL, "alice", nil, "stream"))
	waitState(t, c, "websocket connected", connectedOn(WebSocket))
	level := func(l degrade.Level) func() { return func() { srv.setLevel(t, l) } }
	streamWithMoves(t, srv, c, "stream", 120, []step{
		{30, level(degrade.LevelNoWS), SSE}, {60, level(degrade.LevelNormal), WebSocket},
	})
	if s := c.State(); s.Level != 0 || !s.Connected || s.Transport != WebSocket {
		t.Fatalf("final state %+v, want level 0 on websocket", s)
	}
}
