package client

import (
	"context"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/chatd/chatd/core/protocol"
)

// TestStatsCountsDuplicates has a server send a message twice: Events
// shows it once, and Stats counts the copy it dropped.
func TestStatsCountsDuplicates(t *testing.T) {
	msg := func(seq uint64) protocol.Envelope {
		return protocol.Envelope{Type: protocol.TypeMessage, Room: "a", Seq: seq, ID: text(seq), Text: text(seq)}
	}
	f := newFakeServer(t, func(f *fakeServer) {
		f.wsScripts = []func(*websocket.Conn){func(c *websocket.Conn) {
			for _, seq := range []uint64{1, 1, 2} {
				_ = c.WriteJSON(msg(seq))
			}
		}}
	})
	c := start(t, Config{URL: f.URL, Token: func(context.Context) (string, error) { return "tok", nil },
		Rooms: []string{"a"}, Transports: []string{WebSocket}, ConnectTimeout: 2 * time.Second})
	wantSeqs(t, recvMessages(t, c, 2), "a", 1, text)
	st := c.Stats()
	if st.Duplicates != 1 || st.Connects != 1 {
		t.Fatalf("stats %+v, want 1 duplicate and 1 connect", st)
	}
}

// TestStatsCountsConnects counts a tier move as a second connect.
func TestStatsCountsConnects(t *testing.T) {
	srv := newServer(t, serverOptions{})
	c := start(t, testConfig(t, srv.URL, "alice", nil, "a"))
	waitState(t, c, "websocket connected", connectedOn(WebSocket))
	if n := c.Stats().Connects; n != 1 {
		t.Fatalf("%d connects after the first, want 1", n)
	}
	if err := c.SwitchTransport(SSE); err != nil {
		t.Fatal(err)
	}
	waitState(t, c, "sse connected", connectedOn(SSE))
	if n := c.Stats().Connects; n != 2 {
		t.Fatalf("%d connects after a move, want 2", n)
	}
}

// TestHistory pages back through a room with GET history.
func TestHistory(t *testing.T) {
	srv := newServer(t, serverOptions{})
	for seq := uint64(1); seq <= 3; seq++ {
		srv.post(t, "bob", "a", text(seq), text(seq))
	}
	c := start(t, testConfig(t, srv.URL, "alice", nil))
	ctx := stepCtx(t)
	p, err := c.History(ctx, "a", 0, 2)
	if err != nil {
		t.Fatal(err)
	}
	if p.Head != 3 {
		t.Fatalf("head %d, want 3", p.Head)
	}
	wantSeqs(t, p.Messages, "a", 2, text)
	if len(p.Messages) != 2 {
		t.Fatalf("newest page has %d messages, want 2", len(p.Messages))
	}
	p, err = c.History(ctx, "a", 2, 0)
	if err != nil {
		t.Fatal(err)
	}
	if wantSeqs(t, p.Messages, "a", 1, text); len(p.Messages) != 1 {
		t.Fatalf("page before 2 has %d messages, want 1", len(p.Messages))
	}
	if _, err := c.History(ctx, "bad,room", 0, 0); err == nil {
		t.Fatal("History accepted an invalid room name")
	}
}

// TestEventBuffer sizes the Events channel.
func TestEventBuffer(t *testing.T) {
	if n := cap(New(Config{}).Events()); n != 64 {
		t.Fatalf("default buffer %d, want 64", n)
	}
	if n := cap(New(Config{EventBuffer: 4}).Events()); n != 4 {
		t.Fatalf("buffer %d, want 4", n)
	}
}
