package client

import (
	"testing"

	"github.com/chatd/chatd/core/protocol"
)

// TestJoinLeave joins and leaves rooms at runtime over each tier: WebSocket
// sends join and leave, SSE reconnects with the new rooms, poll polls
// with them.
func TestJoinLeave(t *testing.T) {
	for _, tier := range []string{WebSocket, SSE, Poll} {
		t.Run(tier, func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, serverOptions{})
			c := start(t, testConfig(t, srv.URL, "alice", []string{tier}, "a"))
			waitState(t, c, tier+" connected", connectedOn(tier))
			srv.post(t, "bob", "a", "a1", "a1")
			if got := recvMessages(t, c, 1); got[0].Text != "a1" {
				t.Fatalf("got %+v, want a1", got[0])
			}

			if err := c.Join("b"); err != nil {
				t.Fatal(err)
			}
			waitJoined(t, c, "b")
			srv.post(t, "bob", "b", "b1", "b1")
			srv.post(t, "bob", "a", "a2", "a2")
			// Order holds within a room, not across rooms.
			got := recvMessages(t, c, 2)
			if texts := got[0].Text + "," + got[1].Text; texts != "b1,a2" && texts != "a2,b1" {
				t.Fatalf("got %s, want b1 and a2", texts)
			}

			if err := c.Leave("a"); err != nil {
				t.Fatal(err)
			}
			srv.post(t, "bob", "a", "a3", "a3")
			srv.post(t, "bob", "b", "b2", "b2")
			if got := recvMessages(t, c, 1); got[0].Text != "b2" {
				t.Fatalf("after leaving a got %q, want b2", got[0].Text)
			}
			if rooms := c.Rooms(); len(rooms) != 1 || rooms[0] != "b" {
				t.Fatalf("rooms %v, want [b]", rooms)
			}
		})
	}
}

// waitJoined reads Events until the joined envelope for room.
func waitJoined(t *testing.T, c *Client, room string) {
	t.Helper()
	ctx := stepCtx(t)
	for {
		select {
		case e := <-c.Events():
			if e.Type == protocol.TypeJoined && e.Room == room {
				return
			}
			if e.Type == protocol.TypeMessage {
				t.Fatalf("unexpected message %+v while joining %s", e, room)
			}
		case <-ctx.Done():
			t.Fatalf("no joined for %s; state %+v", room, c.State())
		}
	}
}
