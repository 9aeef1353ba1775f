package poll_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/core/protocol"
	"github.com/chatd/chatd/core/storetest"
	"github.com/chatd/chatd/transports/httpx"
	"github.com/chatd/chatd/transports/poll"
	"github.com/chatd/chatd/transports/transporttest"
)

// noteLane serves a poll handler that never parks, with a Lane on
// /v1/poll and the Authenticator a (nil: e's credentials), on e's hub.
func noteLane(t *testing.T, e *transporttest.Env, a *httpx.Authenticator) (*poll.Handler, *httptest.Server) {
	h, _, srv := laneServer(t, e, poll.Config{Auth: a, Park: -1, Hold: 10 * time.Second, Keep: 5 * time.Second})
	return h, srv
}

// byNote and byQuery are how many of h's polls carried on with a kept
// session found by their connection's note, and by their query's
// strings.
func byNote(h *poll.Handler) uint64 { n, _, _ := h.Resumed(); return n }

func byQuery(h *poll.Handler) uint64 { _, q, _ := h.Resumed(); return q }

// openNote makes p's first polls of s's room: the first, from seq 0;
// the second, which opens the session that is kept, after which the lane
// takes the connection; and the lane's first, which leaves the note. It
// returns the last answer.
func openNote(t *testing.T, e *transporttest.Env, p *poller, s *seqs) answer {
	t.Helper()
	send(t, e, s.room, 1)
	p.write(start(s.room))
	a := p.read("first poll")
	s.mustTake(t, "first poll", a, 1)
	a = pollOn(t, e, p, s, a.Cursor, "second poll")
	return pollOn(t, e, p, s, a.Cursor, "third poll")
}

// pollOn polls room from cursor on p and takes the answer's messages,
// which must be one (the one sent just before).
func pollOn(t *testing.T, e *transporttest.Env, p *poller, s *seqs, cursor, what string) answer {
	t.Helper()
	send(t, e, s.room, 1)
	p.write(from(s.room, cursor))
	a := p.read(what)
	s.mustTake(t, what, a, 1)
	// The answer's cursor is where the client now is: a poll from it, on
	// any connection, carries on exactly.
	if cur, err := protocol.ParseCursor(a.Cursor); err != nil || cur[s.room] != s.last {
		t.Fatalf("%s: cursor %q (%v) at %d in %s, want %d", what, a.Cursor, err, cur[s.room], s.room, s.last)
	}
	return a
}

// A client's polls one after another on a lane's connection carry on
// with their session by the connection's note once the lane serves
// them, exactly; a poll that sends the note's query with another
// credential is not the note's and is served as its own identity's.
func TestPollsOnAConnectionTakeTheirNote(t *testing.T) {
	const room = "note-room"
	e := transporttest.NewEnv(t, transporttest.Options{Hub: fast})
	h, srv := noteLane(t, e, nil)
	p := dialPoller(t, srv, e.Token(t, "nia", transporttest.Claims{}))
	s := &seqs{room: room}
	a := openNote(t, e, p, s)
	noted := byNote(h)
	const polls = 5
	for i := range polls {
		a = pollOn(t, e, p, s, a.Cursor, fmt.Sprint("poll by note ", i))
	}
	if n := byNote(h) - noted; n != polls {
		t.Fatalf("%d of %d polls carried on by the connection's note", n, polls)
	}

	// The same query, on the same connection, with a token for another
	// user who may not read the room: refused, not served from the note.
	noted = byNote(h)
	mine := p.tok
	p.tok = e.Token(t, "other", transporttest.Claims{Rooms: []string{"elsewhere"}})
	send(t, e, room, 1)
	p.write(from(room, a.Cursor))
	if code, body := p.status("another user's poll"); code != http.StatusForbidden {
		t.Fatalf("another user's poll with the note's query: %d %s, want 403", code, body)
	}
	if n := byNote(h) - noted; n != 0 {
		t.Fatalf("another user's poll carried on by the note (%d)", n)
	}
	// The owner's next poll carries on from where it was, exactly.
	p.tok = mine
	p.write(from(room, a.Cursor))
	a = p.read("the owner's poll after")
	s.mustTake(t, "the owner's poll after", a, 1)
}

// A note never outlasts the credential's trust: once the token has
// expired, the poll the note expects is refused as any poll with that
// token is.
func TestNoteEndsWithTheCredential(t *testing.T) {
	const room = "note-expiry"
	clk := storetest.NewClock(time.Now().Truncate(time.Second))
	v, err := auth.NewVerifier(auth.Config{Leeway: -1, Now: clk.Now}) // dev mode: IssueDev signs
	if err != nil {
		t.Fatal(err)
	}
	e := transporttest.NewEnv(t, transporttest.Options{Hub: fast})
	h, srv := noteLane(t, e, &httpx.Authenticator{Verifier: v, Now: clk.Now})
	tok, err := v.IssueDev("Ned", false, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	p := dialPoller(t, srv, tok)
	s := &seqs{room: room}
	a := openNote(t, e, p, s)
	noted := byNote(h)
	a = pollOn(t, e, p, s, a.Cursor, "poll by note")
	if byNote(h) != noted+1 {
		t.Fatal("the poll the note expects did not carry on by it")
	}
	clk.Advance(20 * time.Second)
	send(t, e, room, 1)
	p.write(from(room, a.Cursor))
	if code, body := p.status("poll after exp"); code != http.StatusUnauthorized {
		t.Fatalf("the note's poll after its token expired: %d %s, want 401", code, body)
	}
	if byNote(h) != noted+1 {
		t.Fatal("a poll after exp carried on by the note")
	}
}

// A note whose session was taken on another connection and kept again
// from a later answer is not taken: the poll it expects resumes from its
// own cursor, and gets everything after it.
func TestNoteOfASessionTakenElsewhere(t *testing.T) {
	const room = "note-elsewhere"
	e := transporttest.NewEnv(t, transporttest.Options{Hub: fast})
	h, srv := noteLane(t, e, nil)
	tok := e.Token(t, "eli", transporttest.Claims{})
	p := dialPoller(t, srv, tok)
	s := &seqs{room: room}
	a := openNote(t, e, p, s)
	// The connection's note now expects a.Cursor. The same client polls
	// from it on another connection, which takes the session and keeps
	// it at the next answer's cursor.
	send(t, e, room, 2)
	other := seqs{room: room, last: s.last}
	b := get(t, srv.URL, tok, from(room, a.Cursor))
	other.mustTake(t, "the poll on another connection", b, -1)
	if other.last == s.last {
		t.Fatal("the poll on another connection got nothing")
	}
	noted := byNote(h)
	p.write(from(room, a.Cursor))
	a = p.read("the note's poll")
	s.mustTake(t, "the note's poll", a, -1)
	if s.last < other.last {
		t.Fatalf("the note's poll got up to seq %d, want %d or more", s.last, other.last)
	}
	if byNote(h) != noted {
		t.Fatal("the note's poll carried on with a session kept from another cursor")
	}
}
