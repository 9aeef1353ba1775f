package transporttest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/core/protocol"
)

// Issue 11: your rooms, your name. User-scoped events reach every session
// of a user on every tier without a join, resume exactly, and reach other
// nodes; the room list is remembered across sessions; a chosen name shows
// everywhere.

// nextRoom returns the next "room" envelope of c's user stream, skipping
// the stream's joined envelopes.
func nextRoom(t testing.TB, c Client) protocol.Envelope {
	t.Helper()
	for {
		e, err := c.NextUser(Ctx(t))
		if err != nil {
			t.Fatalf("%s: waiting for a room event: %v", c.Transport(), err)
		}
		if e.Type == protocol.TypeRoom {
			return e
		}
		if e.Type != protocol.TypeJoined || e.Room != protocol.UserRoom {
			t.Fatalf("%s: user stream carried %+v", c.Transport(), e)
		}
	}
}

// wantRoomEvent fails unless e is a room event for room with reason and,
// for a DM, peer.
func wantRoomEvent(t testing.TB, who string, e protocol.Envelope, room, reason string, peer *protocol.Peer) {
	t.Helper()
	switch {
	case e.Type != protocol.TypeRoom || e.Room != room || e.Reason != reason || e.Seq == 0:
	case peer == nil && e.DM != nil, peer != nil && (e.DM == nil || *e.DM != *peer):
	default:
		return
	}
	t.Fatalf("%s got %+v (dm %+v); want room %s, reason %s, dm %+v", who, e, e.DM, room, reason, peer)
}

// roomsOf returns tok's user's room list.
func roomsOf(t testing.TB, e *Env, tok string) []core.RoomEntry {
	t.Helper()
	status, body := httpDo(t, e, http.MethodGet, "/v1/rooms", tok, nil)
	if status != http.StatusOK {
		t.Fatalf("GET /v1/rooms: %d %s", status, body)
	}
	var out struct {
		Rooms []core.RoomEntry `json:"rooms"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatalf("GET /v1/rooms: %s: %v", body, err)
	}
	if out.Rooms == nil {
		t.Fatalf("GET /v1/rooms: %s has no rooms array", body)
	}
	return out.Rooms
}

// roomNames lists the rooms of a room list.
func roomNames(rooms []core.RoomEntry) []string {
	out := make([]string, len(rooms))
	for i, r := range rooms {
		out[i] = r.Room
	}
	return out
}

// The first message of a DM reaches the recipient, and the sender's own
// sessions, as a user event on every tier, with no join of the room; an
// SSE stream or a poll that follows no room at all gets it too.
func TestDMUserEvent(t *testing.T) {
	Run(t, func(t *testing.T, dial Dialer) {
		e := NewEnv(t, Options{Hub: fast})
		aliceTok, bobTok := e.Token(t, "alice", Claims{Name: "Alice"}), e.Token(t, "bob", Claims{Name: "Bob"})
		bob := dial(t, e, bobTok, []Join{{Room: protocol.UserRoom}})
		alice := dial(t, e, aliceTok, []Join{{Room: protocol.UserRoom}})
		room := auth.DMRoom("alice", "bob")
		if ack, err := alice.Send(Ctx(t), room, "d1", "hi bob"); err != nil || ack.Type != protocol.TypeAck || ack.Seq != 1 {
			t.Fatalf("send: %+v, %v", ack, err)
		}
		wantRoomEvent(t, "bob", nextRoom(t, bob), room, protocol.ReasonDM, &protocol.Peer{User: "alice", Name: "Alice"})
		wantRoomEvent(t, "alice", nextRoom(t, alice), room, protocol.ReasonDM, &protocol.Peer{User: "bob", Name: "Bob"})
		rooms := roomsOf(t, e, bobTok)
		if len(rooms) != 1 {
			t.Fatalf("bob's rooms: %+v", rooms)
		}
		r := rooms[0]
		if r.Room != room || r.Head != 1 || r.Read != 0 || r.Unread != 1 || r.Last == nil ||
			r.Last.Text != "hi bob" || r.Last.From != "alice" || r.Last.Name != "Alice" ||
			r.DM == nil || *r.DM != (protocol.Peer{User: "alice", Name: "Alice"}) {
			t.Fatalf("bob's DM: %+v (last %+v, dm %+v)", r, r.Last, r.DM)
		}
		// A second message adds no event; a read lowers the count.
		if _, err := alice.Send(Ctx(t), room, "d2", "still there?"); err != nil {
			t.Fatal(err)
		}
		if got := reply(t, bob, protocol.Envelope{Type: protocol.TypeRead, Room: room, Seq: 2, Ref: "r"}); got.Type != protocol.TypeAck {
			t.Fatalf("read: %+v", got)
		}
		if r := roomsOf(t, e, bobTok)[0]; r.Head != 2 || r.Read != 2 || r.Unread != 0 || r.Last.Text != "still there?" {
			t.Fatalf("after reading: %+v", r)
		}
		// A join is the sentinel: had the second message told bob again,
		// that event would come first.
		reply(t, bob, protocol.Envelope{Type: protocol.TypeJoin, Room: "after", Ref: "join:after"})
		wantRoomEvent(t, "bob", nextRoom(t, bob), "after", protocol.ReasonJoined, nil)
	})
}

// A user event that happens while a client is away comes with its next
// poll, resumed stream or join of "~" with since, exactly once.
func TestUserEventWhileAway(t *testing.T) {
	Run(t, func(t *testing.T, dial Dialer) {
		e := NewEnv(t, Options{Hub: fast, PollHold: time.Second})
		bobTok := e.Token(t, "bob", Claims{})
		bob := dial(t, e, bobTok, []Join{{Room: protocol.UserRoom}})
		send(t, e, e.Token(t, "alice", Claims{}), auth.DMRoom("alice", "bob"), "d1", "hi")
		first := nextRoom(t, bob)
		bob.Close()
		carol := e.Token(t, "carol", Claims{Name: "Carol"})
		send(t, e, carol, auth.DMRoom("bob", "carol"), "c1", "hello")
		bob = dial(t, e, bobTok, []Join{{Room: protocol.UserRoom, Since: ptr(first.Seq)}})
		wantRoomEvent(t, "bob", nextRoom(t, bob), auth.DMRoom("bob", "carol"), protocol.ReasonDM, &protocol.Peer{User: "carol", Name: "Carol"})
		send(t, e, e.Token(t, "dan", Claims{}), auth.DMRoom("bob", "dan"), "n1", "yo")
		if got := nextRoom(t, bob); got.Room != auth.DMRoom("bob", "dan") || got.Seq != first.Seq+2 {
			t.Fatalf("after the missed event: %+v, want dan's DM at seq %d", got, first.Seq+2)
		}
	})
}

// send sends one message over HTTP as tok.
func send(t testing.TB, e *Env, tok, room, id, text string) {
	t.Helper()
	status, body := httpDo(t, e, http.MethodPost, "/v1/send", tok, map[string]string{"room": room, "id": id, "text": text})
	if status != http.StatusOK {
		t.Fatalf("send to %s: %d %s", room, status, body)
	}
}

// rawAnswer is one raw poll answer.
type rawAnswer struct {
	Events []protocol.Envelope `json:"events"`
	Cursor string              `json:"cursor"`
}

func pollRaw(t testing.TB, e *Env, tok string, q url.Values) rawAnswer {
	t.Helper()
	status, body := httpDo(t, e, http.MethodGet, "/v1/poll?"+q.Encode(), tok, nil)
	if status != http.StatusOK {
		t.Fatalf("poll %s: %d %s", q.Encode(), status, body)
	}
	var a rawAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		t.Fatal(err)
	}
	return a
}

// A poll client that was not polling when the event happened gets it on
// its next poll, once: the cursor holds its place in the user's stream,
// with no rooms= at all.
func TestPollUserEventBetweenPolls(t *testing.T) {
	e := NewEnv(t, Options{Hub: fast, PollHold: 300 * time.Millisecond})
	bobTok := e.Token(t, "bob", Claims{})
	first := pollRaw(t, e, bobTok, url.Values{})
	if len(first.Events) != 1 || first.Events[0].Type != protocol.TypeJoined || first.Events[0].Room != protocol.UserRoom {
		t.Fatalf("first poll: %+v", first.Events)
	}
	room := auth.DMRoom("alice", "bob")
	send(t, e, e.Token(t, "alice", Claims{Name: "Alice"}), room, "d1", "hi")
	next := pollRaw(t, e, bobTok, url.Values{"cursor": {first.Cursor}})
	if len(next.Events) != 1 {
		t.Fatalf("poll after the DM: %+v", next.Events)
	}
	wantRoomEvent(t, "bob", next.Events[0], room, protocol.ReasonDM, &protocol.Peer{User: "alice", Name: "Alice"})
	if again := pollRaw(t, e, bobTok, url.Values{"cursor": {next.Cursor}}); len(again.Events) != 0 {
		t.Fatalf("the poll after: %+v, want nothing (held, then empty)", again.Events)
	}
	// Any node resumes any cursor: the first one again gives the same event.
	if old := pollRaw(t, e, bobTok, url.Values{"cursor": {first.Cursor}}); len(old.Events) != 1 || old.Events[0].Seq != next.Events[0].Seq {
		t.Fatalf("the first cursor again: %+v", old.Events)
	}
	// since=~:N, what a client moving from WebSocket knows, answers at
	// once: a joined envelope for ~, then what follows N.
	moved := pollRaw(t, e, bobTok, url.Values{"since": {"~:0"}})
	if len(moved.Events) != 2 || moved.Events[0].Type != protocol.TypeJoined || moved.Events[0].Room != protocol.UserRoom ||
		moved.Events[1].Seq != next.Events[0].Seq {
		t.Fatalf("poll since=~:0: %+v", moved.Events)
	}
	// since= needs rooms= for anything but ~; ~ is no room.
	for _, q := range []url.Values{{"since": {"general:1"}}, {"rooms": {"~"}}, {"rooms": {"~bob"}},
		{"since": {"~:1,~:2"}}, {"since": {"~:x"}}} {
		status, body := httpDo(t, e, http.MethodGet, "/v1/poll?"+q.Encode(), bobTok, nil)
		httpError(t, "poll "+q.Encode(), status, body, http.StatusBadRequest, protocol.CodeBadRequest)
	}
}

// A join puts the room in the user's list and tells their other sessions;
// the list outlives the session; an explicit leave takes it out and tells
// them too, and that is remembered across reconnects.
func TestJoinedLeftRemembered(t *testing.T) {
	Run(t, func(t *testing.T, dial Dialer) {
		e := NewEnv(t, Options{Hub: fast})
		tok := e.Token(t, "alice", Claims{})
		watcher := dial(t, e, tok, []Join{{Room: protocol.UserRoom}})
		c := dial(t, e, tok, []Join{{Room: "general"}, {Room: "random"}})
		wantRoomEvent(t, "watcher", nextRoom(t, watcher), "general", protocol.ReasonJoined, nil)
		wantRoomEvent(t, "watcher", nextRoom(t, watcher), "random", protocol.ReasonJoined, nil)
		c.Close()
		if got := roomNames(roomsOf(t, e, tok)); len(got) != 2 {
			t.Fatalf("rooms after the session closed: %v", got)
		}
		c = dial(t, e, tok, []Join{{Room: "general"}})
		if got := reply(t, c, protocol.Envelope{Type: protocol.TypeLeave, Room: "general", Ref: "l"}); got.Type != protocol.TypeAck {
			t.Fatalf("leave: %+v", got)
		}
		wantRoomEvent(t, "watcher", nextRoom(t, watcher), "general", protocol.ReasonLeft, nil)
		c.Close()
		c = dial(t, e, tok, []Join{{Room: "random"}})
		if got := roomNames(roomsOf(t, e, tok)); len(got) != 1 || got[0] != "random" {
			t.Fatalf("rooms after leave and reconnect: %v, want random", got)
		}
		// Rejoining tells again; rooms are sorted, those with messages first.
		if c.Transport() == "websocket" {
			join(t, c, "general", nil)
		} else {
			reply(t, c, protocol.Envelope{Type: protocol.TypeJoin, Room: "general", Ref: "join:general"})
		}
		wantRoomEvent(t, "watcher", nextRoom(t, watcher), "general", protocol.ReasonJoined, nil)
		send(t, e, tok, "random", "m1", "hi")
		if got := roomNames(roomsOf(t, e, tok)); strings.Join(got, ",") != "random,general" {
			t.Fatalf("rooms: %v, want random (with a message), then general", got)
		}
	})
}

// PUT /v1/me sets a display name that wins over the token's: GET /v1/me,
// new messages and presence show it on every tier; a name with control,
// format or bidi-control characters is refused.
func TestRename(t *testing.T) {
	Run(t, func(t *testing.T, dial Dialer) {
		e := NewEnv(t, Options{Hub: core.Config{SendRate: 1e6, SendBurst: 1e6, PresenceInterval: 20 * time.Millisecond}})
		zoeTok := e.Token(t, "zoe", Claims{Name: "zoe"})
		bob := dial(t, e, e.Token(t, "bob", Claims{}), []Join{{Room: "general"}})
		zoe := dial(t, e, zoeTok, []Join{{Room: "general"}})
		streaming := bob.Transport() != "poll" // a poll sees presence only while it polls
		if streaming {
			waitPresenceName(t, bob, "zoe", "zoe")
		}
		status, body := httpDo(t, e, http.MethodPut, "/v1/me", zoeTok, map[string]string{"name": " Zoe\u0308 Smith "})
		if status != http.StatusOK || string(body) != `{"user":"zoe","name":"Zoë Smith"}`+"\n" {
			t.Fatalf("PUT /v1/me: %d %s", status, body)
		}
		if status, body := httpDo(t, e, http.MethodGet, "/v1/me", zoeTok, nil); status != http.StatusOK ||
			string(body) != `{"user":"zoe","name":"Zoë Smith"}`+"\n" {
			t.Fatalf("GET /v1/me: %d %s", status, body)
		}
		if streaming {
			waitPresenceName(t, bob, "zoe", "Zoë Smith")
		}
		if _, err := zoe.Send(Ctx(t), "general", "m1", "hello"); err != nil {
			t.Fatal(err)
		}
		m := nextNot(t, bob, protocol.TypePresence, protocol.TypeTyping, protocol.TypeReceipt)
		if m.Type != protocol.TypeMessage || m.From != "zoe" || m.Name != "Zoë Smith" {
			t.Fatalf("bob got %+v, want zoe's message under her new name", m)
		}
		status, body = httpDo(t, e, http.MethodGet, "/v1/rooms/general/presence", zoeTok, nil)
		if status != http.StatusOK || !strings.Contains(string(body), `{"user":"zoe","name":"Zoë Smith"}`) {
			t.Fatalf("presence: %d %s", status, body)
		}
	})
}

// waitPresenceName waits for c to see user online under name.
func waitPresenceName(t testing.TB, c Client, user, name string) {
	t.Helper()
	for {
		got := nextNot(t, c, protocol.TypeTyping, protocol.TypeReceipt)
		if p, ok := presenceFor(got, user); ok && p.Name == name && *p.Online {
			return
		}
	}
}

// Display names are refused, bad_request, for what would spoof or hide
// text; GET and PUT /v1/me need a bearer token.
func TestDisplayNamesRefused(t *testing.T) {
	e := NewEnv(t, Options{Hub: fast})
	tok := e.Token(t, "zoe", Claims{})
	for _, name := range []string{"", "   ", "\u202eevil", "Zo\u200be", "a\u2066b", "x\x00y", "line\nbreak", strings.Repeat("x", 65)} {
		status, body := httpDo(t, e, http.MethodPut, "/v1/me", tok, map[string]string{"name": name})
		httpError(t, fmt.Sprintf("PUT /v1/me %+q", name), status, body, http.StatusBadRequest, protocol.CodeBadRequest)
	}
	status, body := httpDo(t, e, http.MethodPut, "/v1/me", tok, map[string]int{"name": 3})
	httpError(t, "a name that is a number", status, body, http.StatusBadRequest, protocol.CodeBadRequest)
	status, body = httpDo(t, e, http.MethodGet, "/v1/me?token="+url.QueryEscape(tok), "", nil)
	httpError(t, "GET /v1/me with ?token=", status, body, http.StatusUnauthorized, protocol.CodeUnauthorized)
	status, body = httpDo(t, e, http.MethodGet, "/v1/rooms", "", nil)
	httpError(t, "GET /v1/rooms without a token", status, body, http.StatusUnauthorized, protocol.CodeUnauthorized)
	if status, body := httpDo(t, e, http.MethodGet, "/v1/me", tok, nil); status != http.StatusOK || string(body) != `{"user":"zoe","name":"zoe"}`+"\n" {
		t.Fatalf("GET /v1/me after refusals: %d %s", status, body)
	}
}

// Dev login answers to an IP address or localhost as the Host, never a
// DNS name, which any site can point at 127.0.0.1 (DNS rebinding): a
// developer's dev-mode server was open to every site they visited.
func TestDevLoginRefusesDNSNames(t *testing.T) {
	e := NewEnv(t, Options{Hub: fast, Dev: true})
	for host, want := range map[string]int{
		"rebind.attacker.example:8080": http.StatusForbidden,
		"rebind.attacker.example":      http.StatusForbidden,
		"localhost:8080":               http.StatusOK,
		"app.localhost":                http.StatusOK,
		"127.0.0.1:8080":               http.StatusOK,
		"[::1]:8080":                   http.StatusOK,
		"192.168.1.20":                 http.StatusOK,
	} {
		req, err := http.NewRequestWithContext(Ctx(t), http.MethodPost, e.URL+"/v1/dev/login", strings.NewReader(`{"name":"dev"}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Host, req.Close = host, true
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("dev login with Host %s: %d, want %d", host, resp.StatusCode, want)
		}
	}
}

// Dev login takes any display name: the id is stable, ASCII and distinct
// per name, and the name shows as typed (NFC, trimmed).
func TestDevLoginDisplayNames(t *testing.T) {
	e := NewEnv(t, Options{Hub: fast, Dev: true})
	login := func(name string) (status int, tok string) {
		status, body := httpDo(t, e, http.MethodPost, "/v1/dev/login", "", map[string]string{"name": name})
		var out struct{ Token string }
		_ = json.Unmarshal(body, &out)
		return status, out.Token
	}
	me := func(tok string) core.Profile {
		status, body := httpDo(t, e, http.MethodGet, "/v1/me", tok, nil)
		var p core.Profile
		if status != http.StatusOK || json.Unmarshal(body, &p) != nil {
			t.Fatalf("GET /v1/me: %d %s", status, body)
		}
		return p
	}
	ids := map[string]string{}
	for _, name := range []string{"Zoë Smith", "Alice Smith", "alice", "Zoe Smith", "山田 太郎"} {
		status, tok := login(name)
		if status != http.StatusOK || tok == "" {
			t.Fatalf("dev login %q: %d", name, status)
		}
		p := me(tok)
		if p.Name != name || protocol.ValidUser(p.User) != nil {
			t.Fatalf("dev login %q: %+v", name, p)
		}
		for i := 0; i < len(p.User); i++ {
			if p.User[i] >= 0x80 || p.User[i] == ' ' {
				t.Fatalf("dev login %q: id %q is not plain ASCII", name, p.User)
			}
		}
		if other, dup := ids[p.User]; dup {
			t.Fatalf("%q and %q share id %q", other, name, p.User)
		}
		ids[p.User] = name
		if _, again := login(name); me(again).User != p.User {
			t.Fatalf("dev login %q twice: two ids", name)
		}
	}
	if _, tok := login("  Zoe\u0308 Smith "); me(tok).Name != "Zoë Smith" {
		t.Fatalf("a decomposed, padded name: %+v", me(tok))
	}
	if p := me(mustLogin(t, login, "alice")); p.User != "alice" {
		t.Fatalf("alice's id is %q, as before display names it was alice", p.User)
	}
	for _, name := range []string{"\u202eevil", "a\u200bb", ""} {
		status, body := httpDo(t, e, http.MethodPost, "/v1/dev/login", "", map[string]string{"name": name})
		httpError(t, fmt.Sprintf("dev login %+q", name), status, body, http.StatusBadRequest, protocol.CodeBadRequest)
	}
}

func mustLogin(t testing.TB, login func(string) (int, string), name string) string {
	t.Helper()
	status, tok := login(name)
	if status != http.StatusOK {
		t.Fatalf("dev login %q: %d", name, status)
	}
	return tok
}

// On three nodes on one Redis: a DM sent on one node reaches the
// recipient's sessions on the two others, and the sender's other session,
// as user events; a name chosen on one node shows in messages sent
// through another.
func TestClusterUserEvents(t *testing.T) { runCluster(t, 3, Options{Hub: fast}, testClusterUserEvents) }

func testClusterUserEvents(t *testing.T, c *Cluster, dial Dialer) {
	aliceTok, bobTok := c.Token(t, "alice", Claims{Name: "Alice"}), c.Token(t, "bob", Claims{Name: "Bob"})
	bobA := dial(t, c.Nodes[0], bobTok, []Join{{Room: protocol.UserRoom}})
	bobC := dial(t, c.Nodes[2], bobTok, []Join{{Room: protocol.UserRoom}})
	aliceC := dial(t, c.Nodes[2], aliceTok, []Join{{Room: protocol.UserRoom}})
	room := auth.DMRoom("alice", "bob")
	send(t, c.Nodes[1], aliceTok, room, "d1", "hi from node-b")
	alice := &protocol.Peer{User: "alice", Name: "Alice"}
	wantRoomEvent(t, "bob on "+c.ID(0), nextRoom(t, bobA), room, protocol.ReasonDM, alice)
	wantRoomEvent(t, "bob on "+c.ID(2), nextRoom(t, bobC), room, protocol.ReasonDM, alice)
	wantRoomEvent(t, "alice on "+c.ID(2), nextRoom(t, aliceC), room, protocol.ReasonDM, &protocol.Peer{User: "bob", Name: "Bob"})
	if rooms := roomsOf(t, c.Nodes[2], bobTok); len(rooms) != 1 || rooms[0].Unread != 1 || rooms[0].Last == nil {
		t.Fatalf("bob's rooms on %s: %+v", c.ID(2), rooms)
	}

	// A rename on node-a: a message through node-c carries it, once
	// node-c has the announcement (node-c cached the old name).
	status, body := httpDo(t, c.Nodes[0], http.MethodPut, "/v1/me", aliceTok, map[string]string{"name": "Alice Liddell"})
	if status != http.StatusOK {
		t.Fatalf("PUT /v1/me: %d %s", status, body)
	}
	var last protocol.Envelope
	for i := 0; last.Name != "Alice Liddell"; i++ {
		if i == 200 {
			t.Fatalf("node-c still sends as %q", last.Name)
		}
		ack, err := aliceC.Send(Ctx(t), room, fmt.Sprint("r", i), "renamed?")
		if err != nil {
			t.Fatal(err)
		}
		page := newestPage(t, c.Nodes[1], aliceTok, room)
		last = page[len(page)-1]
		if last.Seq != ack.Seq {
			t.Fatalf("history ends at %d, the ack said %d", last.Seq, ack.Seq)
		}
	}
	if status, body := httpDo(t, c.Nodes[1], http.MethodGet, "/v1/me", aliceTok, nil); !strings.Contains(string(body), "Alice Liddell") {
		t.Fatalf("GET /v1/me on %s: %d %s", c.ID(1), status, body)
	}
}

// newestPage returns the newest page of room as tok sees it on e.
func newestPage(t testing.TB, e *Env, tok, room string) []protocol.Envelope {
	t.Helper()
	status, body := httpDo(t, e, http.MethodGet, "/v1/rooms/"+url.PathEscape(room)+"/history", tok, nil)
	var page struct{ Messages []protocol.Envelope }
	if status != http.StatusOK || json.Unmarshal(body, &page) != nil || len(page.Messages) == 0 {
		t.Fatalf("history of %s: %d %s", room, status, body)
	}
	return page.Messages
}
