package client

import (
	"testing"

	"github.com/chatd/chatd/core/protocol"
)

// recvRoom reads Events until the next "room" envelope.
func recvRoom(t testing.TB, c *Client) protocol.Envelope {
	t.Helper()
	return waitEvent(t, c, "room event", func(e protocol.Envelope) bool { return e.Type == protocol.TypeRoom })
}

// With UserEvents, a client that follows no room still gets the user's
// events, on every tier, each once, across tier moves: the DM that
// started while it was on WebSocket, another after a move to SSE, a third
// after a move to poll, and then a join, with nothing repeated.
func TestUserEventsAcrossTiers(t *testing.T) {
	srv := newServer(t, serverOptions{})
	cfg := testConfig(t, srv.URL, "bob", nil)
	cfg.UserEvents = true
	c := start(t, cfg)
	waitState(t, c, "websocket connected", connectedOn(WebSocket))
	want := func(room, reason string) {
		t.Helper()
		e := recvRoom(t, c)
		if e.Room != room || e.Reason != reason {
			t.Fatalf("room event %+v, want %s %s", e, room, reason)
		}
		if p := c.Positions()[protocol.UserRoom]; p != e.Seq {
			t.Fatalf("position %d after event %d", p, e.Seq)
		}
	}
	srv.post(t, "alice", "dm:alice:bob", "d1", "hi")
	want("dm:alice:bob", protocol.ReasonDM)
	if err := c.SwitchTransport(SSE); err != nil {
		t.Fatal(err)
	}
	waitState(t, c, "sse connected", connectedOn(SSE))
	srv.post(t, "carol", "dm:bob:carol", "c1", "hi")
	want("dm:bob:carol", protocol.ReasonDM)
	if err := c.SwitchTransport(Poll); err != nil {
		t.Fatal(err)
	}
	waitState(t, c, "poll connected", connectedOn(Poll))
	srv.post(t, "dan", "dm:bob:dan", "n1", "hi")
	want("dm:bob:dan", protocol.ReasonDM)
	if err := c.Join("lobby"); err != nil {
		t.Fatal(err)
	}
	want("lobby", protocol.ReasonJoined)
}

// Without UserEvents the client delivers no room envelope, though the
// server sends them: the first thing after a join's event is a message.
func TestUserEventsOff(t *testing.T) {
	for _, tier := range []string{WebSocket, SSE, Poll} {
		t.Run(tier, func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, serverOptions{})
			c := start(t, testConfig(t, srv.URL, "bob", []string{tier}, "lobby"))
			waitState(t, c, tier+" connected", connectedOn(tier))
			waitJoined(t, c, "lobby")
			srv.post(t, "alice", "dm:alice:bob", "d1", "hi")
			srv.post(t, "alice", "lobby", "m1", "hello")
			ctx := stepCtx(t)
			for {
				select {
				case e := <-c.Events():
					switch e.Type {
					case protocol.TypeRoom:
						t.Fatalf("room event %+v without UserEvents", e)
					case protocol.TypeMessage:
						return
					}
				case <-ctx.Done():
					t.Fatal("no message")
				}
			}
		})
	}
}

// Me, SetName, ListRooms and Leave speak to the server over HTTP, on any
// tier: a chosen name shows in Me and in messages; the list holds what the
// user joined and their DMs; Leave takes a room out of it.
func TestProfileAndRoomList(t *testing.T) {
	srv := newServer(t, serverOptions{})
	c := start(t, testConfig(t, srv.URL, "zoe", []string{Poll}, "lobby"))
	waitState(t, c, "poll connected", connectedOn(Poll))
	waitJoined(t, c, "lobby")
	ctx := stepCtx(t)
	if p, err := c.SetName(ctx, "Zoe\u0308 Smith"); err != nil || p != (Profile{User: "zoe", Name: "Zoë Smith"}) {
		t.Fatalf("SetName = %+v, %v", p, err)
	}
	if _, err := c.SetName(ctx, "\u202eevil"); err == nil {
		t.Fatal("SetName took a bidi override")
	} else if se, ok := err.(*ServerError); !ok || se.Code != protocol.CodeBadRequest {
		t.Fatalf("SetName(bidi): %v, want bad_request", err)
	}
	if p, err := c.Me(ctx); err != nil || p.Name != "Zoë Smith" {
		t.Fatalf("Me = %+v, %v", p, err)
	}
	if ack, err := c.Send(ctx, "dm:bob:zoe", "hi bob"); err != nil || ack.Seq != 1 {
		t.Fatalf("send: %+v, %v", ack, err)
	}
	rooms, err := c.ListRooms(ctx)
	if err != nil || len(rooms) != 2 || rooms[0].Room != "dm:bob:zoe" || rooms[0].Last == nil ||
		rooms[0].Last.Name != "Zoë Smith" || rooms[0].DM == nil || rooms[0].DM.User != "bob" || rooms[1].Room != "lobby" {
		t.Fatalf("ListRooms = %+v, %v", rooms, err)
	}
	if err := c.Leave("lobby"); err != nil {
		t.Fatal(err)
	}
	if rooms, err := c.ListRooms(ctx); err != nil || len(rooms) != 1 || rooms[0].Room != "dm:bob:zoe" {
		t.Fatalf("ListRooms after Leave = %+v, %v", rooms, err)
	}
}

// Over WebSocket the user's stream is joined by an envelope after the
// upgrade (SSE and poll join it in their request): the link connects
// only once the server has answered that join, so that a DM posted as
// soon as the client says it is connected reaches it. While the join is
// held back on its way, the client is not connected.
func TestUserStreamJoinedBeforeConnected(t *testing.T) {
	srv := newServer(t, serverOptions{})
	proxy := newTCPProxy(t, srv.URL)
	release := proxy.holdFrames(t)
	cfg := testConfig(t, proxy.URL, "bob", []string{WebSocket})
	cfg.UserEvents = true
	c := start(t, cfg)
	select {
	case <-proxy.held:
	case <-stepCtx(t).Done():
		t.Fatal("no frame after the upgrade")
	}
	if s := c.State(); s.Connected {
		t.Fatalf("connected before the server heard the user stream's join: %+v", s)
	}
	release()
	waitState(t, c, "websocket connected", connectedOn(WebSocket))
	srv.post(t, "alice", "dm:alice:bob", "d1", "hi")
	if e := recvRoom(t, c); e.Room != "dm:alice:bob" || e.Reason != protocol.ReasonDM {
		t.Fatalf("room event %+v, want the DM with alice", e)
	}
}

// The user's stream resumes from its position over WebSocket, whether
// the dial joins it by its query (since=~:N) or, once a server refused
// the query, by a join envelope with since: an event that came while the
// client was away arrives, once.
func TestUserStreamResumed(t *testing.T) {
	for _, byQuery := range []bool{true, false} {
		t.Run(map[bool]string{true: "query", false: "envelope"}[byQuery], func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, serverOptions{})
			proxy := newTCPProxy(t, srv.URL)
			cfg := testConfig(t, proxy.URL, "bob", []string{WebSocket})
			cfg.UserEvents = true
			c := New(cfg)
			c.noJoinQuery.Store(!byQuery)
			run(t, c)
			waitConnects(t, c, 1, WebSocket)
			srv.post(t, "alice", "dm:alice:bob", "d1", "hi")
			if e := recvRoom(t, c); e.Room != "dm:alice:bob" {
				t.Fatalf("room event %+v", e)
			}
			proxy.stop()
			srv.post(t, "carol", "dm:bob:carol", "c1", "hi")
			proxy.restart(t)
			waitConnects(t, c, 2, WebSocket)
			if e := recvRoom(t, c); e.Room != "dm:bob:carol" || e.Reason != protocol.ReasonDM {
				t.Fatalf("room event %+v after the reconnect, want the DM with carol", e)
			}
		})
	}
}
