package transporttest

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/core/protocol"
)

// A ticket travels in a stream URL and may leak (a proxy's log, a
// browser's history), so what it opens lives only as long as the ticket,
// not the token it came from, and a WebSocket it opens may only receive
// until the client proves its token on it. A stream opened with the token
// itself is not touched. Over WebSocket the session ends with 4013 by the
// ticket's expiry unless refreshed (within the last quarter of the
// ticket's life left when it opened); over SSE the stream ends so with a
// disconnect envelope of code 4013; a poll held with the ticket answers
// at its expiry, and a poll with the ticket is refused from then on, on
// its kept connection too.
func TestTicketStreamLife(t *testing.T) { Run(t, testTicketStreamLife) }

func testTicketStreamLife(t *testing.T, dial Dialer) {
	const room = "tickets"
	// Polls hold for an hour: one a ticket opened must end at its expiry.
	e := NewEnv(t, Options{PollHold: time.Hour})
	token := e.Token(t, "alice", Claims{})
	// A ticket of a few seconds' life, under the server's key, and one
	// too long for the server to remember it proved (a rooms claim of
	// 300 rooms): it is proved at every request.
	// Four seconds: a stream it opens may end a quarter earlier, and the
	// WebSocket's checks below must be done by then, under -race too.
	short := auth.NewTickets(e.TicketKey, 4*time.Second, nil)
	ticket, err := short.Issue(auth.Identity{User: "alice", Name: "alice", Expires: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	many := []string{room}
	for i := range 300 {
		many = append(many, fmt.Sprintf("room-of-a-long-claim-%03d", i))
	}
	long, err := short.Issue(auth.Identity{User: "alice", Name: "alice", Rooms: many, Expires: time.Now().Add(time.Hour)})
	if err != nil || len(long) <= 4<<10 {
		t.Fatalf("a ticket of %d bytes: %v", len(long), err)
	}
	// The clock of this test: a WebSocket opened with the ticket, never
	// refreshed, closes when the ticket expires.
	clock := DialWS(t, e, "ticket="+ticket, nil)
	// The stream under test, opened with the ticket, and a stream of the
	// same user opened with the token.
	byTicket := dial(t, e, "ticket="+ticket, []Join{{Room: room}})
	byToken := dial(t, e, token, []Join{{Room: room}})
	if m := hubSend(t, e, room, "before"); nextOf(t, byTicket, protocol.TypeMessage).Seq != m.Seq {
		t.Fatal("the stream opened with the ticket missed a message")
	}
	nextOf(t, byToken, protocol.TypeMessage)

	var refreshed Client
	if _, ws := byTicket.(*wsClient); ws {
		// It may receive, not write: not send, read, type or leave.
		for _, env := range []protocol.Envelope{
			{Type: protocol.TypeSend, Room: room, ID: "t1", Text: "by ticket", Ref: "s"},
			{Type: protocol.TypeRead, Room: room, Seq: 1, Ref: "r"},
			{Type: protocol.TypeTyping, Room: room, Ref: "y"},
			{Type: protocol.TypeLeave, Room: room, Ref: "l"},
		} {
			wantError(t, env.Type+" on a socket a ticket opened", reply(t, byTicket, env), protocol.CodeUnauthorized)
		}
		// A second socket on the same ticket proves the token: it writes,
		// and lives as long as the token.
		refreshed = DialWS(t, e, "ticket="+ticket, []Join{{Room: room}})
		if got := reply(t, refreshed, protocol.Envelope{Type: protocol.TypeRefresh, Token: token, Ref: "r"}); got.Type != protocol.TypeAck {
			t.Fatalf("refresh: %+v", got)
		}
		if ack, err := refreshed.Send(Ctx(t), room, "t2", "refreshed"); err != nil || ack.Type != protocol.TypeAck {
			t.Fatalf("a send once refreshed: %+v, %v", ack, err)
		}
	}

	var held, heldLong chan heldPoll
	if _, poll := byTicket.(*pollClient); poll {
		held, heldLong = holdPoll(t, e, ticket), holdPoll(t, e, long)
	}

	switch byTicket.(type) {
	case *wsClient, *sseClient:
		// Each ends within the last quarter of the ticket's life, at a
		// point of its own (streams opened together end apart).
		closedWith(t, clock, protocol.CloseTicketExpired, "the ticket's expiry")
		closedWith(t, byTicket, protocol.CloseTicketExpired, "the ticket's expiry")
	case *pollClient:
		// A poll held with it answered at the expiry itself, not at its
		// hold's end an hour on (or, on a slow machine, came too late and
		// was refused); so did one held with the long ticket.
		for what, ch := range map[string]chan heldPoll{"the ticket": held, "the long ticket": heldLong} {
			var h heldPoll
			select {
			case h = <-ch:
			case <-Ctx(t).Done():
				t.Fatalf("a poll held with %s outlived it", what)
			}
			switch {
			case h.err != nil:
				t.Fatalf("the poll held with %s: %v", what, h.err)
			case h.status == http.StatusUnauthorized:
				httpError(t, "the poll held with "+what, h.status, h.body, http.StatusUnauthorized, protocol.CodeTokenExpired)
			case h.status != http.StatusOK || strings.Contains(string(h.body), `"type":"message"`):
				t.Fatalf("the poll held with %s: HTTP %d %s", what, h.status, h.body)
			}
		}
		// Each poll proves its credential: from now on the ticket is refused.
		status, body := httpDo(t, e, http.MethodGet, "/v1/poll?rooms="+room+"&ticket="+url.QueryEscape(ticket), "", nil)
		httpError(t, "a poll with the expired ticket", status, body, http.StatusUnauthorized, protocol.CodeTokenExpired)
		closedWith(t, clock, protocol.CloseTicketExpired, "the ticket's expiry")
	default:
		t.Fatalf("a client of type %T", byTicket)
	}
	// The stream the token opened, and the socket refreshed with it, go on.
	m := hubSend(t, e, room, "after")
	upTo(t, "the stream opened with the token", byToken, m.Seq)
	if refreshed != nil {
		alive(t, refreshed)
		upTo(t, "the refreshed socket", refreshed, m.Seq)
	}
}

// upTo reads c's messages up to seq, which must come.
func upTo(t testing.TB, what string, c Client, seq uint64) {
	t.Helper()
	for {
		got := nextOf(t, c, protocol.TypeMessage)
		if got.Seq == seq {
			return
		}
		if got.Seq > seq {
			t.Fatalf("%s: seq %d, want %d", what, got.Seq, seq)
		}
	}
}

// heldPoll is the answer to a poll holdPoll made.
type heldPoll struct {
	status int
	body   []byte
	err    error
}

// holdPoll polls the user's own events (no room) with ticket once, then
// again from the answer's cursor, which holds for lack of news; the
// second answer comes on the channel.
func holdPoll(t testing.TB, e *Env, ticket string) chan heldPoll {
	t.Helper()
	q := "/v1/poll?ticket=" + url.QueryEscape(ticket)
	status, body := httpDo(t, e, http.MethodGet, q, "", nil)
	var first struct {
		Cursor string `json:"cursor"`
	}
	if decodeJSON(t, body, &first); status != http.StatusOK || first.Cursor == "" {
		t.Fatalf("the first poll: HTTP %d %s", status, body)
	}
	out := make(chan heldPoll, 1)
	go func() {
		var h heldPoll
		defer func() { out <- h }()
		req, err := http.NewRequestWithContext(Ctx(t), http.MethodGet, e.URL+q+"&cursor="+url.QueryEscape(first.Cursor), nil)
		if err != nil {
			h.err = err
			return
		}
		req.Close = true
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			if ue := (*url.Error)(nil); errors.As(err, &ue) {
				err = ue.Err // not the URL: the ticket is long
			}
			h.err = err
			return
		}
		defer resp.Body.Close()
		h.status = resp.StatusCode
		h.body, h.err = io.ReadAll(resp.Body)
	}()
	return out
}

// A stream a ticket opens joins rooms without remembering them in the
// user's room list (a leaked ticket filled a user's list with 500 junk
// rooms, their own pushed out, and the user stream with as many events);
// POST /v1/join, with the token, remembers a room the user chose, and
// tells the user's sessions.
func TestTicketJoinsNotRemembered(t *testing.T) { Run(t, testTicketJoinsNotRemembered) }

func testTicketJoinsNotRemembered(t *testing.T, dial Dialer) {
	e := NewEnv(t, Options{Hub: fast})
	tok := e.Token(t, "alice", Claims{})
	watcher := dial(t, e, tok, []Join{{Room: protocol.UserRoom}})
	dial(t, e, "ticket="+issueTicket(t, e, tok), []Join{{Room: "by-ticket"}})
	status, body := httpDo(t, e, http.MethodPost, "/v1/join", tok, map[string]string{"room": "chosen"})
	var ack protocol.Envelope
	if decodeJSON(t, body, &ack); status != http.StatusOK || ack.Type != protocol.TypeAck || ack.Room != "chosen" {
		t.Fatalf("POST /v1/join: HTTP %d %s", status, body)
	}
	wantRoomEvent(t, "the user's stream", nextRoom(t, watcher), "chosen", protocol.ReasonJoined, nil)
	if got := roomNames(roomsOf(t, e, tok)); len(got) != 1 || got[0] != "chosen" {
		t.Fatalf("the user's rooms: %v, want chosen only", got)
	}
	status, body = httpDo(t, e, http.MethodPost, "/v1/join", tok, map[string]string{"room": "dm:bob:carol"})
	httpError(t, "POST /v1/join of another pair's DM", status, body, http.StatusForbidden, protocol.CodeForbidden)
	// A user's list changes by request are rate limited: each is a store
	// write and an event to every session of the user (one token made
	// 3,000 a second).
	for i := 0; ; i++ {
		if i == 100 {
			t.Fatal("100 POST /v1/join in a row, none rate_limited")
		}
		status, body = httpDo(t, e, http.MethodPost, "/v1/join", tok, map[string]string{"room": fmt.Sprint("many-", i)})
		if status != http.StatusOK {
			httpError(t, "the joins past the rate", status, body, http.StatusTooManyRequests, protocol.CodeRateLimited)
			break
		}
	}
}

// A ticket outlives neither itself nor its token: a stream it opened for
// a token that expires first ends as the token does, with 4012 (refresh
// the token), not 4013 (the token is still good). WebSocket-specific
// (close codes).
func TestTicketOfAnExpiringTokenWS(t *testing.T) {
	e := NewEnv(t, Options{})
	ticket, err := auth.NewTickets(e.TicketKey, time.Hour, nil).Issue(auth.Identity{
		User: "alice", Name: "alice", Expires: time.Now().Add(2 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	c := DialWS(t, e, "ticket="+ticket, nil)
	closedWith(t, c, protocol.CloseTokenExpired, "the token's expiry")
}
