package poll_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/core/protocol"
	"github.com/chatd/chatd/degrade"
	"github.com/chatd/chatd/transports/httpx"
	"github.com/chatd/chatd/transports/poll"
	"github.com/chatd/chatd/transports/transporttest"
)

// Tests of the kept session: a poll that resumes from the cursor of its
// last answer carries on with that answer's session. Every test checks
// exactly-once delivery over real HTTP: each seq once, in order, whatever
// path each answer took.

// fast lifts the send limits, so that tests can fill rooms.
var fast = core.Config{SendRate: 1e6, SendBurst: 1e6}

// server serves a poll handler with cfg on e's hub, on its own port, and
// reports each connection the handler takes over (a parked poll). As the
// API's middleware does, it sets a header before the handler runs.
func server(t testing.TB, e *transporttest.Env, cfg poll.Config) (*poll.Handler, string, <-chan struct{}) {
	t.Helper()
	cfg.Hub = e.Hub
	if cfg.Auth == nil {
		cfg.Auth = &httpx.Authenticator{Verifier: e.Verifier, Tickets: e.Tickets}
	}
	h := poll.New(cfg)
	hijacked := make(chan struct{}, 64)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		h.ServeHTTP(w, r)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateHijacked {
			hijacked <- struct{}{}
		}
	}
	srv.Start()
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
	})
	return h, srv.URL, hijacked
}

// answer is one poll answer as it came off the wire.
type answer struct {
	Events     []protocol.Envelope `json:"events"`
	Cursor     string              `json:"cursor"`
	Control    *protocol.Envelope  `json:"control"`
	ControlTag string              `json:"control_tag"`
	Status     int                 `json:"-"`
	Closed     bool                `json:"-"` // the answer closed the connection
}

var httpClient = &http.Client{Transport: &http.Transport{DisableCompression: true}}

// get makes one poll to base with the bearer token tok.
func get(t testing.TB, base, tok string, q url.Values) answer {
	t.Helper()
	a, err := getErr(context.Background(), base, tok, q)
	if err != nil {
		t.Fatal(err)
	}
	if a.Status != http.StatusOK {
		t.Fatalf("poll %v: HTTP %d", q, a.Status)
	}
	return a
}

// getErr is get for goroutines other than the test's; a refusal is an
// answer with its status.
func getErr(ctx context.Context, base, tok string, q url.Values) (answer, error) {
	return getWith(ctx, base, tok, q, nil)
}

// getWith is getErr with extra request headers; with no tok, the
// request carries no Authorization (a ticket in q, say).
func getWith(ctx context.Context, base, tok string, q url.Values, h http.Header) (answer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/poll?"+q.Encode(), nil)
	if err != nil {
		return answer{}, err
	}
	for k, v := range h {
		req.Header[k] = v
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, err
	}
	a := answer{Status: resp.StatusCode, Closed: resp.Close}
	if resp.StatusCode != http.StatusOK {
		return a, nil
	}
	if cl := resp.Header.Get("Content-Length"); cl != strconv.Itoa(len(raw)) {
		return a, fmt.Errorf("poll: Content-Length %q for a body of %d bytes", cl, len(raw))
	}
	if err := json.Unmarshal(raw, &a); err != nil {
		return a, fmt.Errorf("poll answer %q: %w", raw, err)
	}
	return a, nil
}

// held starts a poll from cursor in a goroutine and returns where its
// answer will come.
func held(base, tok, room, cursor string) <-chan result {
	out := make(chan result, 1)
	go func() {
		a, err := getErr(context.Background(), base, tok, from(room, cursor))
		out <- result{a, err}
	}()
	return out
}

type result struct {
	a   answer
	err error
}

func (r result) answer(t testing.TB) answer {
	t.Helper()
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.a.Status != http.StatusOK {
		t.Fatalf("held poll: HTTP %d", r.a.Status)
	}
	return r.a
}

// from is the query of a poll of room resuming from cursor.
func from(room, cursor string) url.Values {
	return url.Values{"rooms": {room}, "cursor": {cursor}}
}

// start is the query of a client's first poll of room, from seq 0.
func start(room string) url.Values {
	return url.Values{"rooms": {room}, "since": {room + ":0"}}
}

// seqs tracks one client's message seqs in one room: each must be the
// one after the last.
type seqs struct {
	room string
	last uint64
}

func (s *seqs) take(evs []protocol.Envelope) (int, error) {
	n := 0
	for _, ev := range evs {
		if ev.Type != protocol.TypeMessage || ev.Room != s.room {
			continue
		}
		if ev.Seq != s.last+1 {
			return n, fmt.Errorf("got seq %d after %d (nothing twice, nothing skipped)", ev.Seq, s.last)
		}
		s.last = ev.Seq
		n++
	}
	return n, nil
}

// mustTake takes a's messages and fails unless there are want of them
// (-1: any number).
func (s *seqs) mustTake(t testing.TB, what string, a answer, want int) {
	t.Helper()
	n, err := s.take(a.Events)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if want >= 0 && n != want {
		t.Fatalf("%s: %d messages (up to seq %d), want %d", what, n, s.last, want)
	}
}

// until polls from a's cursor, taking each answer's messages, until the
// client has seq last, and returns the last answer.
func (s *seqs) until(t testing.TB, base, tok string, a answer, last uint64) answer {
	t.Helper()
	for s.last < last {
		a = get(t, base, tok, from(s.room, a.Cursor))
		s.mustTake(t, fmt.Sprint("polling up to seq ", last), a, -1)
	}
	return a
}

var sent atomic.Uint64

// send stores n messages in room, one after another, each durable when
// it returns.
func send(t testing.TB, e *transporttest.Env, room string, n int) {
	t.Helper()
	id := auth.Identity{User: "sender", Name: "sender"}
	for range n {
		if _, err := e.Hub.Send(context.Background(), id, room, fmt.Sprint("k-", sent.Add(1)), "a message"); err != nil {
			t.Fatalf("send: %v", err)
		}
	}
}

// eventually waits, bounded, until cond holds.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// A client's polls carry on with one session: what arrives between two
// polls comes with the next at once, a retry from an older cursor (a lost
// answer) replays exactly from the store, and another identity never
// takes the session.
func TestPollCarriesOnWithKeptSession(t *testing.T) {
	const room = "keep"
	e := transporttest.NewEnv(t, transporttest.Options{Hub: fast})
	h, base, _ := server(t, e, poll.Config{Hold: 10 * time.Second, Keep: 5 * time.Second})
	tok := e.Token(t, "kim", transporttest.Claims{})
	send(t, e, room, 2)
	s := &seqs{room: room}
	a := get(t, base, tok, start(room))
	s.mustTake(t, "first poll", a, 2)
	if h.Kept() != 0 {
		t.Fatalf("the first poll's session (since=) was kept")
	}

	// A held poll answered live is kept for the next.
	c := held(base, tok, room, a.Cursor)
	eventually(t, "the poll is held", func() bool { return e.Hub.Sessions()["poll"] == 1 })
	send(t, e, room, 1)
	a = (<-c).answer(t)
	s.mustTake(t, "held poll", a, 1)
	if h.Kept() != 1 {
		t.Fatalf("%d sessions kept after a held poll's answer, want 1", h.Kept())
	}

	// Three messages while no poll is open: the next poll carries on with
	// the kept session, and gets them from there.
	opened, resumed := h.Polls()
	send(t, e, room, 3)
	a = s.until(t, base, tok, a, 6)
	if o, r := h.Polls(); o != opened || r <= resumed {
		t.Fatalf("polls after an answer: %d opened, %d resumed; want none opened", o-opened, r-resumed)
	}

	// A lost answer: the client retries from the cursor before it. The
	// retry opens a session of its own and replays exactly 7..8; the
	// session kept for the lost answer's cursor, which no poll will take,
	// is closed.
	before := a.Cursor
	send(t, e, room, 2)
	lost := &seqs{room: room, last: s.last}
	lost.until(t, base, tok, a, 8)
	opened, _ = h.Polls()
	retry := get(t, base, tok, from(room, before))
	s.mustTake(t, "the retry of a lost answer", retry, 2)
	if o, _ := h.Polls(); o != opened+1 {
		t.Fatalf("the retry from an older cursor opened %d sessions, want 1", o-opened)
	}
	if h.Kept() != 1 {
		t.Fatalf("%d sessions kept after the retry, want 1: the retry's", h.Kept())
	}

	// Another token of the same user with another name is another
	// identity: it opens its own session, and goes on exactly.
	other := e.Token(t, "kim", transporttest.Claims{Name: "Kim K"})
	send(t, e, room, 1)
	opened, _ = h.Polls()
	a = get(t, base, other, from(room, retry.Cursor))
	s.mustTake(t, "another identity", a, 1)
	if o, _ := h.Polls(); o != opened+1 {
		t.Fatalf("a poll with another identity opened %d sessions, want 1", o-opened)
	}
	send(t, e, room, 1)
	s.until(t, base, other, a, 10)
}

// A parked poll's answer keeps its session too: the next poll, on a new
// connection, carries on with it, and so does the one after a parked
// poll whose hold ended empty.
func TestPollKeptAfterParkedAnswer(t *testing.T) {
	const room = "keep-parked"
	e := transporttest.NewEnv(t, transporttest.Options{Hub: fast})
	h, base, hijacked := server(t, e, poll.Config{Park: time.Millisecond, Quiet: -1, Hold: 10 * time.Second, Keep: 5 * time.Second})
	tok := e.Token(t, "lea", transporttest.Claims{})
	s := &seqs{room: room}
	a := get(t, base, tok, start(room))
	for round := range 3 {
		c := held(base, tok, room, a.Cursor)
		<-hijacked // parked
		send(t, e, room, 1)
		a = (<-c).answer(t)
		if !a.Closed {
			t.Fatalf("round %d: a parked poll's answer did not close its connection", round)
		}
		s.mustTake(t, fmt.Sprint("round ", round), a, 1)
	}
	if _, resumed := h.Polls(); resumed < 2 {
		t.Fatalf("%d polls carried on with a kept session after parked answers, want 2 or more", resumed)
	}

	_, short, hijacked := server(t, e, poll.Config{Park: time.Millisecond, Quiet: -1, Hold: 50 * time.Millisecond, Keep: 5 * time.Second})
	a = get(t, short, tok, from(room, a.Cursor)) // opens a session there, parks, ends empty
	<-hijacked
	if len(a.Events) != 0 || !a.Closed {
		t.Fatalf("a parked poll whose hold ended: %d events, closed %v", len(a.Events), a.Closed)
	}
	c := held(short, tok, room, a.Cursor)
	<-hijacked // the kept session, parked again
	send(t, e, room, 1)
	s.mustTake(t, "after an empty parked answer", (<-c).answer(t), 1)
}

// A kept session that no poll takes ends after Keep; one that fills up
// with MaxEvents frames while kept ends at once. Either way the next poll
// opens a session and goes on exactly from its cursor.
func TestPollKeptSessionEnds(t *testing.T) {
	const room = "keep-ends"
	e := transporttest.NewEnv(t, transporttest.Options{Hub: fast})
	h, base, _ := server(t, e, poll.Config{Hold: 10 * time.Second, Keep: 20 * time.Millisecond, MaxEvents: 5})
	tok := e.Token(t, "max", transporttest.Claims{})
	s := &seqs{room: room}
	a := keptOnce(t, e, base, tok, s)
	eventually(t, "the kept session to end", func() bool { return h.Kept() == 0 && e.Hub.Sessions()["poll"] == 0 })
	send(t, e, room, 1)
	opened, _ := h.Polls()
	a = get(t, base, tok, from(room, a.Cursor))
	s.mustTake(t, "after the kept session ended", a, 1)
	if o, _ := h.Polls(); o != opened+1 {
		t.Fatalf("%d sessions opened, want 1", o-opened)
	}

	h, base, _ = server(t, e, poll.Config{Hold: 10 * time.Second, Keep: 5 * time.Second, MaxEvents: 5})
	c := held(base, tok, room, a.Cursor)
	eventually(t, "the poll is held", func() bool { return e.Hub.Sessions()["poll"] == 1 })
	send(t, e, room, 1)
	a = (<-c).answer(t)
	s.mustTake(t, "held poll", a, 1)
	if h.Kept() != 1 {
		t.Fatalf("%d sessions kept, want 1", h.Kept())
	}
	send(t, e, room, 8) // more than MaxEvents while kept
	eventually(t, "the full kept session to end", func() bool { return h.Kept() == 0 && e.Hub.Sessions()["poll"] == 0 })
	last := s.last
	a = get(t, base, tok, from(room, a.Cursor))
	// An answer is cut once it holds MaxEvents: after the writer's batch
	// that reached it.
	if n, err := s.take(a.Events); err != nil || n < 5 {
		t.Fatalf("after the full kept session ended: %d messages (%v), want a full answer from the store", n, err)
	}
	s.until(t, base, tok, a, last+8)
}

// keptOnce starts a client's polls of s.room and answers its held poll
// with one message, whose session the node then keeps: it returns that
// answer.
func keptOnce(t *testing.T, e *transporttest.Env, base, tok string, s *seqs) answer {
	t.Helper()
	a := get(t, base, tok, start(s.room))
	c := held(base, tok, s.room, a.Cursor)
	eventually(t, "the poll is held", func() bool { return e.Hub.Sessions()["poll"] == 1 })
	send(t, e, s.room, 1)
	a = (<-c).answer(t)
	s.mustTake(t, "held poll", a, 1)
	return a
}

// A session kept again after a poll took it still ends Keep after its
// last answer when no poll takes it: the timer of its first keep, left
// set, fires early and is set again for the rest.
func TestPollKeptAgainSessionEnds(t *testing.T) {
	const room = "keep-again"
	e := transporttest.NewEnv(t, transporttest.Options{Hub: fast})
	h, base, _ := server(t, e, poll.Config{Hold: 10 * time.Second, Keep: time.Second, MaxEvents: 5})
	tok := e.Token(t, "kim", transporttest.Claims{})
	s := &seqs{room: room}
	a := keptOnce(t, e, base, tok, s)
	_, resumed := h.Polls()
	send(t, e, room, 1)
	a = get(t, base, tok, from(room, a.Cursor))
	s.mustTake(t, "the poll that took the kept session", a, 1)
	if _, r := h.Polls(); r != resumed+1 {
		t.Skipf("the second poll did not take the kept session (%d resumed): slower than Keep", r-resumed)
	}
	if h.Kept() != 1 {
		t.Fatalf("%d sessions kept after the second answer, want 1", h.Kept())
	}
	eventually(t, "the session kept again to end", func() bool { return h.Kept() == 0 && e.Hub.Sessions()["poll"] == 0 })
	send(t, e, room, 1)
	a = get(t, base, tok, from(room, a.Cursor))
	s.mustTake(t, "after the kept session ended", a, 1)
}

// Kept sessions count against the user's connection cap, and give way to
// a poll that needs a session of its own.
func TestPollKeptSessionsGiveWayToTheCap(t *testing.T) {
	e := transporttest.NewEnv(t, transporttest.Options{Hub: core.Config{SendRate: 1e6, SendBurst: 1e6, MaxConnsPerUser: 2}})
	h, base, _ := server(t, e, poll.Config{Hold: 10 * time.Second, Keep: 5 * time.Second})
	tok := e.Token(t, "ned", transporttest.Claims{})
	cursors := map[string]string{}
	for _, room := range []string{"cap-a", "cap-b"} {
		a := get(t, base, tok, start(room))
		c := held(base, tok, room, a.Cursor)
		eventually(t, "the poll is held", func() bool { return e.Hub.Sessions()["poll"] == len(cursors)+1 })
		send(t, e, room, 1)
		cursors[room] = (<-c).answer(t).Cursor
	}
	if h.Kept() != 2 || e.Hub.Sessions()["poll"] != 2 {
		t.Fatalf("%d kept, %d open; want the 2 the cap allows", h.Kept(), e.Hub.Sessions()["poll"])
	}
	s := &seqs{room: "cap-c"}
	send(t, e, "cap-c", 1)
	s.mustTake(t, "a third room, with the cap filled by kept sessions", get(t, base, tok, start("cap-c")), 1)
	if h.Kept() != 0 {
		t.Fatalf("%d sessions still kept after giving way", h.Kept())
	}
	send(t, e, "cap-a", 1)
	a := &seqs{room: "cap-a", last: 1}
	a.mustTake(t, "the evicted session's client", get(t, base, tok, from("cap-a", cursors["cap-a"])), 1)
}

// Many clients poll one room while it is sent to in bursts and one by
// one, and every so often a client loses an answer and polls again from
// the cursor before it. Each client gets every seq once, in order, on the
// chain of answers it took, whichever path each answer took.
func TestPollKeptBroadcastExactlyOnce(t *testing.T) {
	const room, clients, total = "keep-broadcast", 8, 240
	e := transporttest.NewEnv(t, transporttest.Options{Hub: fast})
	h, base, _ := server(t, e, poll.Config{Hold: 10 * time.Second, Linger: time.Millisecond, Keep: 5 * time.Second})
	errs := make(chan error, clients)
	ready := make(chan struct{}, clients)
	for i := range clients {
		tok := e.Token(t, fmt.Sprint("b", i), transporttest.Claims{})
		go func() {
			s := &seqs{room: room}
			a, err := getErr(context.Background(), base, tok, start(room))
			ready <- struct{}{}
			for n := 0; err == nil && s.last < total; n++ {
				next, perr := getErr(context.Background(), base, tok, from(room, a.Cursor))
				if perr != nil || next.Status != http.StatusOK {
					err = fmt.Errorf("poll: %v, HTTP %d", perr, next.Status)
					break
				}
				if n%7 == 3 {
					continue // lost: poll again from a.Cursor
				}
				if _, err = s.take(next.Events); err == nil {
					a = next
				}
			}
			errs <- err
		}()
	}
	for range clients {
		<-ready
	}
	for sent := 0; sent < total; {
		n := 1 + sent%13
		n = min(n, total-sent)
		send(t, e, room, n)
		sent += n
	}
	for range clients {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	opened, resumed := h.Polls()
	if resumed == 0 || opened <= clients {
		t.Fatalf("%d polls opened a session, %d carried on with a kept one: want both paths taken", opened, resumed)
	}
	t.Logf("%d clients, %d messages: %d polls opened a session, %d carried on", clients, total, opened, resumed)
}

// A poll that says it knows an older level than the one in force answers
// at once with the new control, on a kept session too (through Level,
// without building the user's offer), and the next poll goes on exactly.
func TestPollBehindTheLevelAnswersAtOnce(t *testing.T) {
	const room = "keep-level"
	e := transporttest.NewEnv(t, transporttest.Options{Hub: fast})
	var level atomic.Int64
	var offers atomic.Int64
	control := func(string) ([]byte, uint64) {
		offers.Add(1)
		w := degrade.NewControlWire(protocol.Envelope{Type: protocol.TypeControl, Level: protocol.Ptr(int(level.Load()))})
		return w.Data, w.Tag
	}
	h, base, _ := server(t, e, poll.Config{Hold: 10 * time.Second, Keep: 5 * time.Second, ControlWire: control,
		Level: func() int { return int(level.Load()) }})
	tok := e.Token(t, "ivy", transporttest.Claims{})
	withLevel := func(q url.Values, l string) url.Values { q.Set("level", l); return q }
	s := &seqs{room: room}
	a := get(t, base, tok, withLevel(start(room), "0"))
	c := make(chan result, 1)
	go func() {
		a, err := getErr(context.Background(), base, tok, withLevel(from(room, a.Cursor), "0"))
		c <- result{a, err}
	}()
	eventually(t, "the poll is held", func() bool { return e.Hub.Sessions()["poll"] == 1 })
	send(t, e, room, 1)
	a = (<-c).answer(t)
	s.mustTake(t, "held poll", a, 1)

	level.Store(2)
	_, resumed := h.Polls()
	before := offers.Load()
	var ctl struct {
		Control *protocol.Envelope `json:"control"`
	}
	req, _ := http.NewRequest(http.MethodGet, base+"/v1/poll?"+withLevel(from(room, a.Cursor), "0").Encode(), nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var behind answer
	if err := json.Unmarshal(raw, &behind); err != nil || json.Unmarshal(raw, &ctl) != nil {
		t.Fatalf("answer %q: %v", raw, err)
	}
	if ctl.Control == nil || ctl.Control.Level == nil || *ctl.Control.Level != 2 || len(behind.Events) != 0 {
		t.Fatalf("a poll behind the level: control %+v, %d events; want level 2 at once, no events", ctl.Control, len(behind.Events))
	}
	if _, r := h.Polls(); r != resumed+1 {
		t.Fatalf("the poll behind the level did not carry on with the kept session")
	}
	if n := offers.Load() - before; n != 1 {
		t.Fatalf("%d offers built for one answer, want 1: the level check reads Level", n)
	}
	send(t, e, room, 2)
	s.until(t, base, tok, behind, 3)
}

// A poll carries on with a kept session only for the subscription that
// session was kept for. Here the kept poll resumed by Last-Event-ID with
// rooms= naming a room; a poll with no rooms= that presents its answer's
// cursor follows the user's own stream only: it opens a session of its
// own and gets nothing of the room. The client's next poll of the room
// from that cursor carries on with the kept session and gets what came
// meanwhile, once. (The lookup by the query's strings tells these apart
// by the rooms= value the session kept: DESIGN.md, "Long-polling".)
func TestPollKeptByItsQueryOnly(t *testing.T) {
	const room = "keep-form"
	e := transporttest.NewEnv(t, transporttest.Options{Hub: fast})
	h, base, _ := server(t, e, poll.Config{Hold: 300 * time.Millisecond, Keep: 5 * time.Second})
	tok := e.Token(t, "liv", transporttest.Claims{})
	s := &seqs{room: room}
	a := get(t, base, tok, start(room))

	done := make(chan result, 1)
	go func() {
		got, err := getWith(context.Background(), base, tok, url.Values{"rooms": {room}}, http.Header{"Last-Event-Id": {a.Cursor}})
		done <- result{got, err}
	}()
	eventually(t, "the poll is held", func() bool { return e.Hub.Sessions()["poll"] == 1 })
	send(t, e, room, 1)
	a = (<-done).answer(t)
	s.mustTake(t, "the poll by Last-Event-ID", a, 1)
	if h.Kept() != 1 {
		t.Fatalf("%d sessions kept after the poll by Last-Event-ID, want 1", h.Kept())
	}

	send(t, e, room, 1) // waits in the kept session
	opened, resumed := h.Polls()
	own := get(t, base, tok, url.Values{"cursor": {a.Cursor}})
	for _, ev := range own.Events {
		if ev.Room == room {
			t.Fatalf("a poll of the user's stream only got %+v of %s", ev, room)
		}
	}
	if o, r := h.Polls(); o != opened+1 || r != resumed {
		t.Fatalf("the poll with no rooms=: %d opened, %d resumed; want 1 opened", o-opened, r-resumed)
	}

	opened, resumed = h.Polls()
	a = get(t, base, tok, from(room, a.Cursor))
	s.mustTake(t, "the room's poll after", a, 1)
	if o, r := h.Polls(); o != opened || r != resumed+1 {
		t.Fatalf("the room's poll after: %d opened, %d resumed; want 1 resumed", o-opened, r-resumed)
	}
}

// A poll resumes its kept session by what its query means, not by how
// it is written: rooms= in another form that names the same rooms
// carries on as the exact form does, either way round, and the next poll
// in the same form finds the session by its strings alone. The same
// query from another client (X-Chat-Client) opens a session of its own.
func TestPollKeptForItsQueryInAnyForm(t *testing.T) {
	const room = "keep-any"
	e := transporttest.NewEnv(t, transporttest.Options{Hub: fast})
	h, base, _ := server(t, e, poll.Config{Hold: 300 * time.Millisecond, Keep: 5 * time.Second})
	tok := e.Token(t, "max", transporttest.Claims{})
	s := &seqs{room: room}
	send(t, e, room, 1)
	a := get(t, base, tok, start(room))
	s.mustTake(t, "first poll", a, 1)
	send(t, e, room, 1)
	a = get(t, base, tok, from(room, a.Cursor)) // opens the session that is kept
	s.mustTake(t, "second poll", a, 1)

	forms := []url.Values{
		{"rooms": {room + ",," + room}},
		{"rooms": {"," + room}, "batch": {"0"}},
		{"rooms": {room}}, // as from writes it, last: the other client's poll below is its twin
	}
	for i, q := range forms {
		send(t, e, room, 2)
		want := s.last + 2
		opened, resumed := h.Polls()
		polls := uint64(0)
		for s.last < want { // the fan-out may hand the two over one at a time
			q.Set("cursor", a.Cursor)
			a = get(t, base, tok, q)
			polls++
			s.mustTake(t, fmt.Sprintf("form %d, rooms=%s", i, q.Get("rooms")), a, -1)
		}
		if o, r := h.Polls(); o != opened || r != resumed+polls {
			t.Fatalf("form %d, rooms=%s: %d polls opened %d sessions and resumed %d; want every one resumed",
				i, q.Get("rooms"), polls, o-opened, r-resumed)
		}
		// The next poll in the same form sends back the strings its kept
		// session holds: found by them, without a parse.
		send(t, e, room, 1)
		want, polls = s.last+1, 0
		found := byQuery(h)
		for s.last < want { // a hold may end before the message reaches the session
			q.Set("cursor", a.Cursor)
			a = get(t, base, tok, q)
			polls++
			s.mustTake(t, fmt.Sprintf("form %d again", i), a, -1)
		}
		if n := byQuery(h) - found; n != polls {
			t.Fatalf("form %d, rooms=%s, again: %d polls of %d found their session by the query's strings",
				i, q.Get("rooms"), n, polls)
		}
	}

	send(t, e, room, 1)
	opened, resumed := h.Polls()
	other, err := getWith(context.Background(), base, tok, from(room, a.Cursor), http.Header{httpx.HeaderClient: {"another-tab"}})
	if err != nil {
		t.Fatal(err)
	}
	s.mustTake(t, "another client's poll", other, 1)
	if o, r := h.Polls(); o != opened+1 || r != resumed {
		t.Fatalf("another client's poll: %d opened, %d resumed; want 1 opened", o-opened, r-resumed)
	}
}

// parkingLane serves a poll handler that parks every held poll at once,
// with a Lane on /v1/poll, on e's hub.
func parkingLane(t testing.TB, e *transporttest.Env) (*poll.Handler, *httpx.Lane, *httptest.Server) {
	return laneServer(t, e, poll.Config{Park: time.Millisecond, Quiet: -1, Hold: 10 * time.Second, Keep: 5 * time.Second})
}

// laneServer serves a poll handler of cfg with a Lane on /v1/poll, on
// e's hub, with e's credentials unless cfg has an Authenticator.
func laneServer(t testing.TB, e *transporttest.Env, cfg poll.Config) (*poll.Handler, *httpx.Lane, *httptest.Server) {
	lane := httpx.NewLane("/v1/poll")
	cfg.Hub, cfg.Lane = e.Hub, lane
	if cfg.Auth == nil {
		cfg.Auth = &httpx.Authenticator{Verifier: e.Verifier, Tickets: e.Tickets}
	}
	h := poll.New(cfg)
	srv := httptest.NewUnstartedServer(h)
	lane.Attach(srv.Config)
	srv.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		lane.Close(ctx)
		srv.CloseClientConnections()
		srv.Close()
	})
	return h, lane, srv
}

// With a Lane, a parked poll's answer keeps its connection: the lane
// takes it over and answers the client's next polls on it, parked again
// or not, in order and exactly; what the client sent after its parked
// poll (a pipelined poll) is served first.
func TestParkedAnswerKeepsConnection(t *testing.T) {
	const room = "park-keep"
	e := transporttest.NewEnv(t, transporttest.Options{Hub: fast})
	h, lane, srv := parkingLane(t, e)
	lc := dialPoller(t, srv, e.Token(t, "pia", transporttest.Claims{}))
	write := lc.write
	read := func(what string) answer {
		t.Helper()
		a := lc.read(what)
		if a.Closed {
			t.Fatalf("%s: the answer closed the connection", what)
		}
		return a
	}
	s := &seqs{room: room}
	write(start(room))
	a := read("first poll")
	for round := range 3 {
		parks := h.Parks()
		write(from(room, a.Cursor))
		eventually(t, "the poll to park", func() bool { return h.Parks() > parks })
		send(t, e, room, 1)
		a = read(fmt.Sprint("parked poll ", round))
		s.mustTake(t, fmt.Sprint("parked poll ", round), a, 1)
	}
	// A poll pipelined behind a parked one: the lane serves it once the
	// parked one has answered.
	parks := h.Parks()
	write(from(room, a.Cursor))
	eventually(t, "the poll to park", func() bool { return h.Parks() > parks })
	write(start(room)) // from seq 0: answered at once, with all four
	send(t, e, room, 1)
	a = read("parked poll with one behind it")
	s.mustTake(t, "parked poll with one behind it", a, 1)
	all := &seqs{room: room}
	b := read("the poll behind it")
	all.mustTake(t, "the poll behind it", b, 4)
	if lane.Served() < 3 {
		t.Fatalf("the lane served %d polls, want the parked connection's next ones (3 or more)", lane.Served())
	}

	// A client that asked to close gets Connection: close from its
	// parked poll, lane or not.
	c2 := dialPoller(t, srv, lc.tok)
	parks = h.Parks()
	c2.writeHeader(from(room, b.Cursor), "Connection: close\r\n")
	eventually(t, "the poll to park", func() bool { return h.Parks() > parks })
	send(t, e, room, 1)
	if a := c2.read("a parked poll that asked to close"); !a.Closed {
		t.Fatal("a parked poll that asked to close: the answer keeps the connection")
	}
}

// A client that sends more than a request's worth while its poll is
// parked (a flood, not a pipelined poll) gets its answer at once, with
// what the poll has (nothing yet) and Connection: close, long before
// the hold is over, and the connection ends there, lane or not: what
// it sent is dropped, never served as requests on the lane, and the
// node reads no more of it. The client's next poll, on a new
// connection, resumes from that answer's cursor.
func TestParkedAnswerOverflowCloses(t *testing.T) {
	for _, withLane := range []bool{true, false} {
		t.Run(fmt.Sprintf("lane=%v", withLane), func(t *testing.T) { testParkedOverflow(t, withLane) })
	}
}

func testParkedOverflow(t *testing.T, withLane bool) {
	const room = "park-flood"
	// No presence, whose news would answer the poll too: a hold longer
	// than a read waits (next), so an answer that came only with news or
	// when the hold was over would not be read.
	quiet := fast
	quiet.Features = func(_, feature string) bool { return feature != core.FeaturePresence }
	e := transporttest.NewEnv(t, transporttest.Options{Hub: quiet})
	cfg := poll.Config{Park: time.Millisecond, Quiet: -1, Hold: time.Hour, Keep: 5 * time.Second}
	var h *poll.Handler
	var srv *httptest.Server
	if withLane {
		h, _, srv = laneServer(t, e, cfg)
	} else {
		cfg.Hub, cfg.Auth = e.Hub, &httpx.Authenticator{Verifier: e.Verifier, Tickets: e.Tickets}
		h = poll.New(cfg)
		srv = httptest.NewServer(h)
		t.Cleanup(srv.Close)
	}
	tok := e.Token(t, "rhea", transporttest.Claims{})
	lc := dialPoller(t, srv, tok)
	lc.write(start(room))
	a := lc.read("first poll")
	s := &seqs{room: room}
	parks := h.Parks()
	lc.write(from(room, a.Cursor))
	eventually(t, "the poll to park", func() bool { return h.Parks() > parks })
	// Just past maxPending (8 KiB), in a request the lane would otherwise
	// serve: a poll with one long header. Just past, so that the watcher
	// has read all of it when it answers: bytes still unread when the
	// node closes the connection would reset it before the answer is read.
	lc.writeHeader(from(room, a.Cursor), "X-Pad: "+strings.Repeat("p", 8<<10)+"\r\n")
	a = lc.read("the flooded poll's answer")
	if !a.Closed {
		t.Fatal("a parked poll whose client flooded it: the answer keeps the connection")
	}
	if h.Overflows() != 1 {
		t.Fatalf("%d overflows counted, want 1", h.Overflows())
	}
	s.mustTake(t, "the flooded poll's answer", a, 0)
	_ = lc.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	// The end of the connection, not an answer to the poll in the flood.
	if n, err := lc.br.Read(make([]byte, 1)); n != 0 || (err != io.EOF && !errors.Is(err, syscall.ECONNRESET)) {
		t.Fatalf("after the answer with Connection: close: read %d bytes, %v; want EOF", n, err)
	}
	send(t, e, room, 1)
	next := dialPoller(t, srv, tok)
	next.write(from(room, a.Cursor))
	s.mustTake(t, "the next poll, from the flooded answer's cursor", next.read("the next poll"), 1)
}

// poller is a raw HTTP/1.1 connection that polls as tok.
type poller struct {
	t   *testing.T
	c   net.Conn
	br  *bufio.Reader
	tok string
}

// dialPoller connects a poller to srv.
func dialPoller(t *testing.T, srv *httptest.Server, tok string) *poller {
	t.Helper()
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &poller{t: t, c: c, br: bufio.NewReader(c), tok: tok}
}

// write sends a poll with query q.
func (p *poller) write(q url.Values) { p.t.Helper(); p.writeHeader(q, "") }

// writeHeader sends a poll with query q and the header lines extra.
func (p *poller) writeHeader(q url.Values, extra string) {
	p.t.Helper()
	if _, err := fmt.Fprintf(p.c, "GET /v1/poll?%s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n%s\r\n", q.Encode(), p.tok, extra); err != nil {
		p.t.Fatalf("poll: %v", err)
	}
}

// next reads the next answer whole: its status, whether it closes the
// connection, and its body.
func (p *poller) next(what string) (int, bool, []byte) {
	p.t.Helper()
	_ = p.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(p.br, nil)
	if err != nil {
		p.t.Fatalf("%s: %v", what, err)
	}
	raw, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		p.t.Fatalf("%s: %d %q (%v)", what, resp.StatusCode, raw, err)
	}
	return resp.StatusCode, resp.Close, raw
}

// read reads the next answer, which must be a 200 with a poll's body;
// Closed says whether it closes the connection.
func (p *poller) read(what string) answer {
	p.t.Helper()
	code, closed, raw := p.next(what)
	a := answer{Status: code, Closed: closed}
	if code != http.StatusOK || json.Unmarshal(raw, &a) != nil {
		p.t.Fatalf("%s: %d %q", what, code, raw)
	}
	return a
}

// status reads the next answer's status and body, whatever they are.
func (p *poller) status(what string) (int, string) {
	p.t.Helper()
	code, _, raw := p.next(what)
	return code, string(raw)
}

// A parked poll's answer says Connection: close, and the connection
// then ends, when the connection cannot go on: the lane has closed (the
// server shuts down or drains), or the session has ended. The client's
// next poll opens a new connection.
func TestParkedAnswerClosesConnection(t *testing.T) {
	for _, tc := range []struct {
		name string
		end  func(e *transporttest.Env, lane *httpx.Lane)
		news bool // the answer carries the message sent after end
	}{
		{"lane closed", func(_ *transporttest.Env, lane *httpx.Lane) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			lane.Close(ctx)
		}, true},
		{"session ended", func(e *transporttest.Env, _ *httpx.Lane) {
			e.Hub.ForEachSession(func(s *core.Session) { s.Close(core.DisconnectNormal) })
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const room = "park-close"
			e := transporttest.NewEnv(t, transporttest.Options{Hub: fast})
			h, lane, srv := parkingLane(t, e)
			lc := dialPoller(t, srv, e.Token(t, "quin", transporttest.Claims{}))
			poll := func(what string, q url.Values) answer {
				t.Helper()
				lc.write(q)
				if what == "parked poll" {
					parks := h.Parks()
					eventually(t, "the poll to park", func() bool { return h.Parks() > parks })
					tc.end(e, lane)
					send(t, e, room, 1)
				}
				return lc.read(what)
			}
			send(t, e, room, 1)
			a := poll("first poll", start(room))
			if a.Closed {
				t.Fatalf("the first poll's answer closed the connection")
			}
			s := &seqs{room: room}
			s.mustTake(t, "first poll", a, 1)
			a = poll("parked poll", from(room, a.Cursor))
			if !a.Closed {
				t.Fatalf("the parked poll's answer keeps the connection")
			}
			want := 0
			if tc.news {
				want = 1
			}
			s.mustTake(t, "parked poll", a, want)
			_ = lc.c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if n, err := lc.br.Read(make([]byte, 1)); n != 0 || err != io.EOF {
				t.Fatalf("after an answer with Connection: close: read %d bytes, %v; want EOF", n, err)
			}
		})
	}
}
