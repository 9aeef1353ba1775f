package transporttest

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/protocol"
	"github.com/chatd/chatd/internal/syncbuf"
)

// A dm room is open to its two users only, on every path: join, send,
// read receipts, typing, history, presence.
func TestDMPermissions(t *testing.T) { Run(t, testDMPermissions) }

func testDMPermissions(t *testing.T, dial Dialer) {
	const dm = "dm:alice:bob"
	e := NewEnv(t, Options{})
	alice := dial(t, e, e.Token(t, "alice", Claims{}), []Join{{Room: dm}})
	bob := dial(t, e, e.Token(t, "bob", Claims{}), []Join{{Room: dm}})
	ack, err := alice.Send(Ctx(t), dm, "hi-bob", "hi bob")
	if err != nil || ack.Type != protocol.TypeAck || ack.Seq != 1 {
		t.Fatalf("alice sends: %+v, %v", ack, err)
	}
	if m := expectSeqs(t, bob, dm, 1, 1)[0]; m.From != "alice" {
		t.Fatalf("bob got %+v", m)
	}
	if got := reply(t, bob, protocol.Envelope{Type: protocol.TypeRead, Room: dm, Seq: 1, Ref: "bob-read"}); got.Type != protocol.TypeAck || got.Seq != 1 {
		t.Fatalf("bob's read: %+v", got)
	}
	for _, user := range []string{"alice", "bob"} {
		if h := history(t, e, e.Token(t, user, Claims{}), dm); h.Head != 1 || len(h.Messages) != 1 {
			t.Fatalf("%s reads history: %+v", user, h)
		}
	}

	carolTok := e.Token(t, "carol", Claims{Admin: true}) // admin does not open dm rooms
	carol := dial(t, e, carolTok, nil)
	wantError(t, "carol joins", reply(t, carol, protocol.Envelope{Type: protocol.TypeJoin, Room: dm, Ref: "j"}), protocol.CodeForbidden)
	got, err := carol.Send(Ctx(t), dm, "intrude", "hello?")
	if err != nil {
		t.Fatal(err)
	}
	wantError(t, "carol sends", got, protocol.CodeForbidden)
	wantError(t, "carol reads", reply(t, carol, protocol.Envelope{Type: protocol.TypeRead, Room: dm, Seq: 1, Ref: "r"}), protocol.CodeForbidden)
	wantError(t, "carol types", reply(t, carol, protocol.Envelope{Type: protocol.TypeTyping, Room: dm, Ref: "ty"}), protocol.CodeForbidden)
	alive(t, carol)
	for _, req := range []struct {
		method, path string
		body         any
	}{
		{http.MethodGet, "/v1/rooms/" + dm + "/history", nil},
		{http.MethodGet, "/v1/rooms/" + dm + "/presence", nil},
		{http.MethodPost, "/v1/send", map[string]string{"room": dm, "id": "intrude-2", "text": "x"}},
		{http.MethodPost, "/v1/read", map[string]any{"room": dm, "seq": 1}},
		{http.MethodPost, "/v1/typing", map[string]any{"room": dm}},
	} {
		status, body := httpDo(t, e, req.method, req.path, carolTok, req.body)
		httpError(t, "carol "+req.method+" "+req.path, status, body, http.StatusForbidden, protocol.CodeForbidden)
	}
	// The same pair in the wrong order is nobody's room.
	wantError(t, "alice joins dm:bob:alice", reply(t, alice, protocol.Envelope{Type: protocol.TypeJoin, Room: "dm:bob:alice", Ref: "rev"}), protocol.CodeForbidden)
	// Nothing of carol's was stored or delivered: alice's next message is
	// seq 2 and is the next thing both members see.
	if ack, err := alice.Send(Ctx(t), dm, "m2", "still private"); err != nil || ack.Type != protocol.TypeAck || ack.Seq != 2 {
		t.Fatalf("alice's 2nd send: %+v, %v", ack, err)
	}
	expectSeqs(t, bob, dm, 2, 2)
	expectSeqs(t, alice, dm, 1, 2) // nextOf skips bob's receipt in between
	if h := history(t, e, e.Token(t, "bob", Claims{}), dm); h.Head != 2 || len(h.Messages) != 2 {
		t.Fatalf("after carol's attempts: %+v", h)
	}
}

// A rooms claim limits the token to matching rooms.
func TestRoomsClaim(t *testing.T) { Run(t, testRoomsClaim) }

func testRoomsClaim(t *testing.T, dial Dialer) {
	e := NewEnv(t, Options{})
	tok := e.Token(t, "alice", Claims{Rooms: []string{"team-*"}})
	c := dial(t, e, tok, []Join{{Room: "team-a"}})
	wantError(t, "join general", reply(t, c, protocol.Envelope{Type: protocol.TypeJoin, Room: "general", Ref: "g"}), protocol.CodeForbidden)
	got, err := c.Send(Ctx(t), "general", "g1", "x")
	if err != nil {
		t.Fatal(err)
	}
	wantError(t, "send to general", got, protocol.CodeForbidden)
	if ack, err := c.Send(Ctx(t), "team-b", "tb1", "x"); err != nil || ack.Type != protocol.TypeAck {
		t.Fatalf("send to team-b: %+v, %v", ack, err)
	}
	if ack, err := c.Send(Ctx(t), "team-a", "ta1", "x"); err != nil || ack.Type != protocol.TypeAck {
		t.Fatalf("send to team-a: %+v, %v", ack, err)
	}
	expectSeqs(t, c, "team-a", 1, 1)
	status, body := httpDo(t, e, http.MethodGet, "/v1/rooms/general/history", tok, nil)
	httpError(t, "history of general", status, body, http.StatusForbidden, protocol.CodeForbidden)
	// Tickets carry the claim.
	ticket := issueTicket(t, e, tok)
	wc, err := DialWSURL(WSURL(e, "ticket="+url.QueryEscape(ticket)), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(wc.Close)
	wantError(t, "join general by ticket", reply(t, wc, protocol.Envelope{Type: protocol.TypeJoin, Room: "general", Ref: "g"}), protocol.CodeForbidden)
	join(t, wc, "team-c", nil)
}

// issueTicket asks POST /v1/ticket for a ticket.
func issueTicket(t testing.TB, e *Env, token string) string {
	t.Helper()
	status, body := httpDo(t, e, http.MethodPost, "/v1/ticket", token, nil)
	var tk struct {
		Ticket    string `json:"ticket"`
		ExpiresIn int    `json:"expires_in"`
	}
	decodeJSON(t, body, &tk)
	if status != http.StatusOK || tk.Ticket == "" || tk.ExpiresIn != 60 {
		t.Fatalf("POST /v1/ticket: %d %s", status, body)
	}
	return tk.Ticket
}

// refused dials url and checks that the upgrade is refused with status
// and the error envelope for code.
func refused(t testing.TB, what, url string, h http.Header, status int, code protocol.Code) {
	t.Helper()
	c, err := DialWSURL(url, h, nil)
	if err == nil {
		c.Close()
		t.Fatalf("%s: connected, want %d %s", what, status, code)
	}
	var de *DialError
	if !errors.As(err, &de) {
		t.Fatalf("%s: %v, want a refused upgrade", what, err)
	}
	httpError(t, what, de.Status, de.Body, status, code)
}

// Credentials over the wire: none, expired, forged; bearer, ?token= and
// ?ticket=. WebSocket-specific for the upgrade; /v1/send is plain HTTP.
func TestAuthWS(t *testing.T) {
	e := NewEnv(t, Options{})
	good := e.Token(t, "alice", Claims{})
	expired := e.Token(t, "alice", Claims{Expires: time.Now().Add(-time.Hour)})
	forged := good[:len(good)-4] + Flip(good[len(good)-4:])
	bearer := func(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }

	refused(t, "no credentials", WSURL(e, ""), nil, http.StatusUnauthorized, protocol.CodeUnauthorized)
	refused(t, "expired bearer", WSURL(e, ""), bearer(expired), http.StatusUnauthorized, protocol.CodeTokenExpired)
	refused(t, "expired ?token=", WSURL(e, "token="+expired), nil, http.StatusUnauthorized, protocol.CodeTokenExpired)
	refused(t, "forged bearer", WSURL(e, ""), bearer(forged), http.StatusUnauthorized, protocol.CodeUnauthorized)
	refused(t, "forged ?token=", WSURL(e, "token="+forged), nil, http.StatusUnauthorized, protocol.CodeUnauthorized)
	refused(t, "not a bearer", WSURL(e, ""), http.Header{"Authorization": {"Basic YTpi"}}, http.StatusUnauthorized, protocol.CodeUnauthorized)

	send := map[string]string{"room": "general", "id": "x", "text": "x"}
	status, body := httpDo(t, e, http.MethodPost, "/v1/send", "", send)
	httpError(t, "send without credentials", status, body, http.StatusUnauthorized, protocol.CodeUnauthorized)
	status, body = httpDo(t, e, http.MethodPost, "/v1/send", expired, send)
	httpError(t, "send with an expired token", status, body, http.StatusUnauthorized, protocol.CodeTokenExpired)
	status, body = httpDo(t, e, http.MethodPost, "/v1/send", forged, send)
	httpError(t, "send with a forged token", status, body, http.StatusUnauthorized, protocol.CodeUnauthorized)

	// Each accepted form acts as alice.
	ticket := issueTicket(t, e, good)
	watcher := DialWS(t, e, e.Token(t, "bob", Claims{}), []Join{{Room: "general"}})
	for i, form := range []struct {
		url    string
		h      http.Header
		ticket bool
	}{
		{WSURL(e, ""), bearer(good), false},
		{WSURL(e, "token="+url.QueryEscape(good)), nil, false},
		{WSURL(e, "ticket="+url.QueryEscape(ticket)), nil, true},
		{WSURL(e, "ticket="+url.QueryEscape(ticket)), nil, true}, // a ticket may be used again until it expires
	} {
		c, err := DialWSURL(form.url, form.h, nil)
		if err != nil {
			t.Fatalf("form %d: %v", i, err)
		}
		t.Cleanup(c.Close)
		if form.ticket {
			// A socket a ticket opened writes once the token is proved on
			// it (TestTicketStreamLife).
			if got := reply(t, c, protocol.Envelope{Type: protocol.TypeRefresh, Token: good, Ref: "r"}); got.Type != protocol.TypeAck {
				t.Fatalf("form %d: refresh %+v", i, got)
			}
		}
		if ack, err := c.Send(Ctx(t), "general", "form-"+string(rune('a'+i)), "hi"); err != nil || ack.Type != protocol.TypeAck {
			t.Fatalf("form %d: send %+v, %v", i, ack, err)
		}
		if m := nextOf(t, watcher, protocol.TypeMessage); m.From != "alice" {
			t.Fatalf("form %d: message from %q, want alice", i, m.From)
		}
	}

	// Tampered tickets.
	payload, sig, _ := strings.Cut(ticket, ".")
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		t.Fatalf("ticket payload: %v", err)
	}
	var fields map[string]any
	if err := json.Unmarshal(raw, &fields); err != nil {
		t.Fatalf("ticket payload %q: %v", raw, err)
	}
	fields["u"] = "mallory"
	raw, _ = json.Marshal(fields)
	for what, bad := range map[string]string{
		"ticket for another user": base64.RawURLEncoding.EncodeToString(raw) + "." + sig,
		"ticket with a bad mac":   payload + "." + Flip(sig[:4]) + sig[4:],
		"ticket without a mac":    payload,
		"token as ticket":         good,
	} {
		refused(t, what, WSURL(e, "ticket="+url.QueryEscape(bad)), nil, http.StatusUnauthorized, protocol.CodeUnauthorized)
	}
}

// Neither a token nor a ticket is ever logged, accepted or refused, in a
// header, the query or a refresh frame.
func TestSecretsNotLogged(t *testing.T) {
	var logs syncbuf.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e := NewEnv(t, Options{Logger: log})
	good := e.Token(t, "alice", Claims{})
	other := e.Token(t, "bob", Claims{})
	expired := e.Token(t, "alice", Claims{Expires: time.Now().Add(-time.Hour)})
	forged := good[:len(good)-4] + Flip(good[len(good)-4:])
	ticket := issueTicket(t, e, good)
	badTicket := ticket[:len(ticket)-4] + Flip(ticket[len(ticket)-4:])

	var clients []*wsClient
	dialOK := func(url string, h http.Header) {
		c, err := DialWSURL(url, h, nil)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		clients = append(clients, c)
		alive(t, c)
	}
	dialOK(WSURL(e, ""), http.Header{"Authorization": {"Bearer " + good}})
	dialOK(WSURL(e, "token="+good), nil)
	dialOK(WSURL(e, "ticket="+url.QueryEscape(ticket)), nil)
	for _, q := range []string{"token=" + expired, "token=" + forged, "ticket=" + badTicket} {
		if c, err := DialWSURL(WSURL(e, q), nil, nil); err == nil {
			c.Close()
			t.Fatalf("bad credential accepted")
		}
	}
	if c, err := DialWSURL(WSURL(e, ""), http.Header{"Authorization": {"Bearer " + forged}}, nil); err == nil {
		c.Close()
		t.Fatalf("forged bearer accepted")
	}
	for _, q := range []string{"?token=" + good, "?ticket=" + url.QueryEscape(ticket), "?token=" + expired, "?ticket=" + badTicket} {
		httpDo(t, e, http.MethodGet, "/v1/rooms/general/history"+q, "", nil)
		httpDo(t, e, http.MethodGet, "/v1/negotiate"+q, "", nil)
	}
	httpDo(t, e, http.MethodPost, "/v1/send", good, map[string]string{"room": "general", "id": "l1", "text": "x"})
	httpDo(t, e, http.MethodPost, "/v1/send", expired, map[string]string{"room": "general", "id": "l2", "text": "x"})
	httpDo(t, e, http.MethodPost, "/v1/send", forged, map[string]string{"room": "general", "id": "l3", "text": "x"})
	// In-band refreshes: refused ones (wrong user, expired, forged) and an accepted one.
	c := clients[0]
	wantError(t, "refresh as bob", reply(t, c, protocol.Envelope{Type: protocol.TypeRefresh, Token: other, Ref: "r1"}), protocol.CodeForbidden)
	wantError(t, "refresh expired", reply(t, c, protocol.Envelope{Type: protocol.TypeRefresh, Token: expired, Ref: "r2"}), protocol.CodeTokenExpired)
	wantError(t, "refresh forged", reply(t, c, protocol.Envelope{Type: protocol.TypeRefresh, Token: forged, Ref: "r3"}), protocol.CodeUnauthorized)
	fresh := e.Token(t, "alice", Claims{Expires: time.Now().Add(2 * time.Hour)})
	if got := reply(t, c, protocol.Envelope{Type: protocol.TypeRefresh, Token: fresh, Ref: "r4"}); got.Type != protocol.TypeAck {
		t.Fatalf("refresh: %+v", got)
	}
	for _, c := range clients {
		c.Close()
	}
	eventually(t, "every session to end", func() bool { return e.Hub.Sessions()[wsName] == 0 })

	out := logs.String()
	if !strings.Contains(out, "/v1/ws") || !strings.Contains(out, "/v1/ticket") {
		t.Fatalf("the access log was not captured; the test proves nothing:\n%s", out)
	}
	secrets := map[string]string{"token": good, "other token": other, "expired token": expired,
		"forged token": forged, "fresh token": fresh, "ticket": ticket, "bad ticket": badTicket}
	for name, s := range secrets {
		for _, part := range append([]string{s}, strings.Split(s, ".")...) {
			if len(part) >= 16 && (strings.Contains(out, part) || strings.Contains(out, url.QueryEscape(part))) {
				t.Errorf("the log holds the %s (or part of it, %q)", name, part)
			}
		}
	}
	if t.Failed() {
		t.Logf("log:\n%s", out)
	}
}

// A session ends with 4012 when its token expires. WebSocket-specific
// (close code).
func TestTokenExpiryWS(t *testing.T) {
	e := NewEnv(t, Options{})
	// exp has whole seconds: this token expires 1 to 2 s from now.
	c := DialWS(t, e, e.Token(t, "alice", Claims{Expires: time.Now().Add(2 * time.Second)}), nil)
	closedWith(t, c, protocol.CloseTokenExpired, "the token's expiry")
	if d := nextOf(t, c, protocol.TypeDisconnect); d.CloseCode != protocol.CloseTokenExpired {
		t.Fatalf("disconnect envelope %+v", d)
	}
}

// An in-band refresh before expiry keeps the session open past the old
// exp; a refresh for another user is forbidden and changes nothing.
// A refresh whose token's rooms claim leaves out a room the connection
// has joined is forbidden, and the old token stays; one that still
// allows every joined room is taken. WebSocket-specific: it is the
// socket's refresh frame.
func TestRefreshNarrowingRoomsWS(t *testing.T) {
	e := NewEnv(t, Options{})
	c := DialWS(t, e, e.Token(t, "alice", Claims{Rooms: []string{"team-*", "ops"}}), []Join{{Room: "team-a"}, {Room: "ops"}})
	narrow := e.Token(t, "alice", Claims{Rooms: []string{"ops"}})
	wantError(t, "a refresh that leaves out team-a", reply(t, c, protocol.Envelope{Type: protocol.TypeRefresh, Token: narrow, Ref: "r1"}),
		protocol.CodeForbidden)
	// The old token still holds: team-a is still the session's.
	if ack, err := c.Send(Ctx(t), "team-a", "t1", "still mine"); err != nil || ack.Type != protocol.TypeAck {
		t.Fatalf("a send to team-a after the refused refresh: %+v, %v", ack, err)
	}
	if got := reply(t, c, protocol.Envelope{Type: protocol.TypeLeave, Room: "team-a", Ref: "l1"}); got.Type == protocol.TypeError {
		t.Fatalf("leave: %+v", got)
	}
	if got := reply(t, c, protocol.Envelope{Type: protocol.TypeRefresh, Token: narrow, Ref: "r2"}); got.Type != protocol.TypeAck {
		t.Fatalf("the refresh once team-a is left: %+v", got)
	}
	wantError(t, "a join the new token leaves out", reply(t, c, protocol.Envelope{Type: protocol.TypeJoin, Room: "team-b", Ref: "j1"}),
		protocol.CodeForbidden)
}

// WebSocket-specific: it is the socket's refresh frame, and it uses the
// client's pings as a clock.
func TestRefreshWS(t *testing.T) {
	const room = "refresh"
	e := NewEnv(t, Options{Hub: core.Config{Heartbeat: 200 * time.Millisecond}})
	exp := time.Now().Add(2 * time.Second)
	oldExp := time.Unix(exp.Unix(), 0) // what the token says
	c := DialWS(t, e, e.Token(t, "alice", Claims{Expires: exp}), []Join{{Room: room}})
	wc := c.(*wsClient)

	wantError(t, "refresh as bob", reply(t, c, protocol.Envelope{Type: protocol.TypeRefresh,
		Token: e.Token(t, "bob", Claims{}), Ref: "r0"}), protocol.CodeForbidden)
	got := reply(t, c, protocol.Envelope{Type: protocol.TypeRefresh, Token: e.Token(t, "alice", Claims{}), Ref: "r1"})
	if got.Type != protocol.TypeAck || got.Ref != "r1" {
		t.Fatalf("refresh: %+v", got)
	}
	if time.Now().After(oldExp) {
		t.Skip("the machine took longer than the old token's life to refresh it; nothing to check")
	}
	// Wait for a ping that arrives well after the old exp.
	for {
		select {
		case at := <-wc.pings:
			if at.Before(oldExp.Add(500 * time.Millisecond)) {
				continue
			}
		case code := <-c.Closed():
			t.Fatalf("closed with %d before the old token's exp had passed by 500ms", code)
		case <-Ctx(t).Done():
			t.Fatal("no pings")
		}
		break
	}
	alive(t, c)
	ack, err := c.Send(Ctx(t), room, "after", "still here")
	if err != nil || ack.Type != protocol.TypeAck {
		t.Fatalf("send after the old exp: %+v, %v", ack, err)
	}
	expectSeqs(t, c, room, 1, 1)
}
