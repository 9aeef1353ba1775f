package transporttest

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/chatd/chatd/core/protocol"
	"github.com/chatd/chatd/transports/httpx"
	"github.com/chatd/chatd/transports/poll"
)

// Tests of the poll tier's own paths: held polls that resume with nothing
// to say (no flush, no writer), coalesced and lingering answers, gzip.
// Every test checks exactly-once delivery: each seq once, in order.

// ptAnswer is one poll answer as it came off the wire.
type ptAnswer struct {
	Events   []protocol.Envelope `json:"events"`
	Cursor   string              `json:"cursor"`
	Encoding string              `json:"-"` // Content-Encoding
	Wire     int                 `json:"-"` // body bytes on the wire
	Closed   bool                `json:"-"` // the answer closed the connection
	Header   http.Header         `json:"-"`
}

// ptClient does not add or decode gzip by itself, so that tests see the
// answer as the server sent it.
var ptClient = &http.Client{Transport: &http.Transport{DisableCompression: true}}

// ptPoll makes one poll to base+"/v1/poll"; gzip asks for a gzipped answer.
func ptPoll(t testing.TB, base, tok string, q url.Values, gz bool) ptAnswer {
	t.Helper()
	a, err := ptPollErr(base, tok, q, gz)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// ptPollErr is ptPoll for goroutines other than the test's.
func ptPollErr(base, tok string, q url.Values, gz bool) (ptAnswer, error) {
	req, err := http.NewRequest(http.MethodGet, base+"/v1/poll?"+q.Encode(), nil)
	if err != nil {
		return ptAnswer{}, err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	if gz {
		req.Header.Set("Accept-Encoding", "gzip")
	}
	resp, err := ptClient.Do(req)
	if err != nil {
		return ptAnswer{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return ptAnswer{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return ptAnswer{}, fmt.Errorf("poll: HTTP %d: %s", resp.StatusCode, raw)
	}
	if cl := resp.Header.Get("Content-Length"); cl != strconv.Itoa(len(raw)) {
		return ptAnswer{}, fmt.Errorf("poll: Content-Length %q for a body of %d bytes", cl, len(raw))
	}
	a := ptAnswer{Encoding: resp.Header.Get("Content-Encoding"), Wire: len(raw), Closed: resp.Close, Header: resp.Header}
	body := raw
	if a.Encoding == "gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return ptAnswer{}, fmt.Errorf("poll: gzip answer: %w", err)
		}
		if body, err = io.ReadAll(zr); err != nil {
			return ptAnswer{}, fmt.Errorf("poll: gzip answer: %w", err)
		}
	}
	if err := json.Unmarshal(body, &a); err != nil {
		return ptAnswer{}, fmt.Errorf("poll answer %q: %w", body, err)
	}
	return a, nil
}

// ptServer serves a poll handler with cfg on e's hub, on its own port, so
// that a test can set what the Env does not (Linger, Compress, MaxEvents,
// Park).
func ptServer(t testing.TB, e *Env, cfg poll.Config) string {
	base, _ := ptParkingServer(t, e, cfg)
	return base
}

// ptParkingServer is ptServer that also reports each connection the
// handler takes over (a parked poll).
func ptParkingServer(t testing.TB, e *Env, cfg poll.Config) (string, <-chan struct{}) {
	t.Helper()
	cfg.Hub, cfg.Auth = e.Hub, &httpx.Authenticator{Verifier: e.Verifier, Tickets: e.Tickets}
	hijacked := make(chan struct{}, 16)
	h := poll.New(cfg)
	// As the API's middleware does, a header set before the handler runs;
	// a parked answer must carry it too.
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
	return srv.URL, hijacked
}

// ptSeqs tracks one client's message seqs in one room: each must be the
// one after the last.
type ptSeqs struct {
	room string
	last uint64
}

func (s *ptSeqs) take(evs []protocol.Envelope) (int, error) {
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

// Many consecutive polls while a room is broadcast to: every poller sees
// every seq once, in order, and answers carry several messages.
func TestPollBroadcastExactlyOnce(t *testing.T) {
	const room, pollers, bursts, burst = "pt-broadcast", 4, 10, 30
	e := NewEnv(t, Options{Hub: fast})
	plain := e.URL
	lingering := ptServer(t, e, poll.Config{Linger: 5 * time.Millisecond, Hold: 10 * time.Second})
	type result struct {
		polls, messages int
		err             error
	}
	results := make(chan result, pollers)
	ready := make(chan struct{}, pollers)
	for i := range pollers {
		base := plain
		if i%2 == 1 {
			base = lingering
		}
		tok := e.Token(t, fmt.Sprint("pt-poller", i), Claims{})
		go func() {
			seqs := &ptSeqs{room: room}
			q := url.Values{"rooms": {room}, "since": {room + ":0"}}
			res := result{}
			for first := true; seqs.last < bursts*burst; first = false {
				a, err := ptPollErr(base, tok, q, false)
				if err == nil {
					var n int
					n, err = seqs.take(a.Events)
					res.messages += n
				}
				if err != nil {
					res.err = err
					break
				}
				res.polls++
				q = url.Values{"rooms": {room}, "cursor": {a.Cursor}}
				if first {
					ready <- struct{}{}
				}
			}
			results <- res
		}()
	}
	for range pollers {
		<-ready
	}
	for range bursts {
		fill(t, e, room, burst, "broadcast")
	}
	total := 0
	for range pollers {
		r := <-results
		if r.err != nil {
			t.Fatal(r.err)
		}
		if r.messages != bursts*burst {
			t.Fatalf("a poller got %d messages, want %d", r.messages, bursts*burst)
		}
		total += r.polls
	}
	// Each burst commits in groups, and a poll answers with everything
	// queued when it is answered: far fewer answers than messages.
	if total >= pollers*bursts*burst {
		t.Fatalf("%d polls for %d messages to %d pollers: answers are not coalesced", total, bursts*burst, pollers)
	}
	t.Logf("%d pollers, %d messages: %.1f messages per answer", pollers, bursts*burst,
		float64(pollers*bursts*burst)/float64(total))
}

// A held poll with Linger answers with what arrived while it lingered:
// here it lingers until the answer is full (an hour's linger, ten events
// an answer), so the ten messages sent one by one, each after the last
// was stored, come in one answer, and the next poll goes on from there.
// The poll is never parked: a parked poll has been open for Park (250
// ms by default), longer than any real Linger, so news answers it at
// once, and on a busy machine the ten sends can take that long.
func TestPollLingerBatchesLiveMessages(t *testing.T) {
	const room, max = "pt-linger", 10
	e := NewEnv(t, Options{Hub: fast})
	base := ptServer(t, e, poll.Config{Linger: time.Hour, MaxEvents: max, Hold: 20 * time.Second, Park: -1})
	tok := e.Token(t, "pt-alice", Claims{})
	first := ptPoll(t, base, tok, url.Values{"rooms": {room}, "since": {room + ":0"}}, false)
	held := make(chan ptAnswer, 1)
	errs := make(chan error, 1)
	go func() {
		a, err := ptPollErr(base, tok, url.Values{"rooms": {room}, "cursor": {first.Cursor}}, false)
		if err != nil {
			errs <- err
			return
		}
		held <- a
	}()
	eventually(t, "the poll is held", func() bool { return e.Hub.Sessions()["poll"] == 1 })
	for i := range max {
		hubSend(t, e, room, fmt.Sprint("one by one ", i))
	}
	var a ptAnswer
	select {
	case a = <-held:
	case err := <-errs:
		t.Fatal(err)
	}
	seqs := &ptSeqs{room: room}
	if n, err := seqs.take(a.Events); err != nil || n != max {
		t.Fatalf("the lingering answer carried %d messages (%v), want all %d in one", n, err, max)
	}
	// Ten more while no poll is open: the next poll replays them, again
	// a full answer, from exactly where the last one ended.
	fill(t, e, room, max, "after")
	next := ptPoll(t, base, tok, url.Values{"rooms": {room}, "cursor": {a.Cursor}}, false)
	if n, err := seqs.take(next.Events); err != nil || n != max {
		t.Fatalf("the next poll carried %d messages (%v), want exactly seqs %d..%d", n, err, max+1, 2*max)
	}
}

// Answers are gzipped when Compress allows it, the client accepts gzip
// and the answer is large enough; they decode to the same events,
// delivered once.
func TestPollGzipAnswers(t *testing.T) {
	const room = "pt-gzip"
	e := NewEnv(t, Options{Hub: fast})
	var mu sync.Mutex
	allow := map[string]bool{"pt-zip": true}
	base := ptServer(t, e, poll.Config{Hold: 10 * time.Second, Compress: func(user string) bool {
		mu.Lock()
		defer mu.Unlock()
		return allow[user]
	}})
	fill(t, e, room, 40, ptText)
	zip, plain := e.Token(t, "pt-zip", Claims{}), e.Token(t, "pt-plain", Claims{})
	start := url.Values{"rooms": {room}, "since": {room + ":0"}}

	big := ptPoll(t, base, zip, start, true)
	seqs := &ptSeqs{room: room}
	if n, err := seqs.take(big.Events); err != nil || n != 40 {
		t.Fatalf("gzipped answer: %d messages (%v), want 1..40", n, err)
	}
	if big.Encoding != "gzip" {
		t.Fatalf("a 40-message answer to a client that accepts gzip came with Content-Encoding %q", big.Encoding)
	}
	same := ptPoll(t, base, zip, start, false)
	if same.Encoding != "" || len(same.Events) != len(big.Events) {
		t.Fatalf("without Accept-Encoding: encoding %q, %d events; want plain, %d", same.Encoding, len(same.Events), len(big.Events))
	}
	if big.Wire*2 > same.Wire {
		t.Fatalf("gzipped answer is %d bytes, plain %d: want at least 2x smaller", big.Wire, same.Wire)
	}
	if a := ptPoll(t, base, plain, start, true); a.Encoding != "" || len(a.Events) != len(big.Events) {
		t.Fatalf("a user Compress refuses got encoding %q", a.Encoding)
	}

	// A small live answer is not worth gzipping; the cursor goes on exactly.
	held := make(chan ptAnswer, 1)
	errs := make(chan error, 1)
	go func() {
		a, err := ptPollErr(base, zip, url.Values{"rooms": {room}, "cursor": {big.Cursor}}, true)
		if err != nil {
			errs <- err
			return
		}
		held <- a
	}()
	eventually(t, "the poll is held", func() bool { return e.Hub.Sessions()["poll"] == 1 })
	hubSend(t, e, room, "short")
	var small ptAnswer
	select {
	case small = <-held:
	case err := <-errs:
		t.Fatal(err)
	}
	if n, err := seqs.take(small.Events); err != nil || n != 1 || small.Encoding != "" {
		t.Fatalf("small live answer: %d messages (%v), encoding %q; want seq 41, plain", n, err, small.Encoding)
	}

	// Compression turned off for the user (a degradation level): plain.
	mu.Lock()
	allow["pt-zip"] = false
	mu.Unlock()
	fill(t, e, room, 20, "more of the same kind of chat text, long enough to be worth compressing")
	// The session kept from the last answer may answer with what it has
	// so far: the 20 come in one answer or several, each plain.
	for cur, got := small.Cursor, 0; got < 20; {
		off := ptPoll(t, base, zip, url.Values{"rooms": {room}, "cursor": {cur}}, true)
		n, err := seqs.take(off.Events)
		if err != nil || off.Encoding != "" {
			t.Fatalf("with compression off: %d messages (%v), encoding %q; want 42..61, plain", n, err, off.Encoding)
		}
		got, cur = got+n, off.Cursor
	}
}

// The cheap re-poll (a resume at the head: no replay, no flush) goes on
// exactly across a restart, and an old cursor, before or beyond the
// retained history, resumes exactly from where it says.
func TestPollRepollAcrossRestartAndStaleCursor(t *testing.T) {
	const room = "pt-restart"
	e := NewEnv(t, Options{Hub: fast, MaxMessages: 20})
	tok := e.Token(t, "pt-bob", Claims{})
	fill(t, e, room, 5, "before")
	seqs := &ptSeqs{room: room}
	a := ptPoll(t, e.URL, tok, url.Values{"rooms": {room}, "since": {room + ":0"}}, false)
	if n, err := seqs.take(a.Events); err != nil || n != 5 {
		t.Fatalf("first poll: %d messages (%v), want 1..5", n, err)
	}
	old := a.Cursor // at seq 5, the head

	// A held poll at the head, answered live.
	a = ptHeldThenSend(t, e, e.URL, tok, a.Cursor, room, 1)
	if n, err := seqs.take(a.Events); err != nil || n != 1 {
		t.Fatalf("held poll: %d messages (%v), want seq 6", n, err)
	}

	e.Restart(t)
	fill(t, e, room, 3, "while away") // 7..9, stored by the new process
	a = ptPoll(t, e.URL, tok, url.Values{"rooms": {room}, "cursor": {a.Cursor}}, false)
	if n, err := seqs.take(a.Events); err != nil || n != 3 {
		t.Fatalf("after the restart: %d messages (%v), want 7..9", n, err)
	}
	for _, ev := range a.Events {
		if ev.Type == protocol.TypeJoined {
			t.Fatalf("an exact resume after a restart sent %+v", ev)
		}
	}
	a = ptHeldThenSend(t, e, e.URL, tok, a.Cursor, room, 1)
	if n, err := seqs.take(a.Events); err != nil || n != 1 {
		t.Fatalf("held poll after the restart: %d messages (%v), want seq 10", n, err)
	}

	// A stale cursor within the retained history replays exactly.
	again := &ptSeqs{room: room, last: 5}
	if n, err := again.take(ptPoll(t, e.URL, tok, url.Values{"rooms": {room}, "cursor": {old}}, false).Events); err != nil || n != 5 {
		t.Fatalf("stale cursor at 5: %d messages (%v), want 6..10", n, err)
	}

	// Past the retained history (20 messages), the answer says so and
	// goes on from the oldest message kept, then live.
	fill(t, e, room, 20, "pruning") // 11..30; 11..30 kept
	a = ptPoll(t, e.URL, tok, url.Values{"rooms": {room}, "cursor": {old}}, false)
	var joined *protocol.Envelope
	for i, ev := range a.Events {
		if ev.Type == protocol.TypeJoined {
			joined = &a.Events[i]
		}
	}
	if joined == nil || joined.Recovered == nil || *joined.Recovered {
		t.Fatalf("a cursor past the retained history got no joined with recovered:false: %+v", a.Events)
	}
	pruned := &ptSeqs{room: room, last: 10}
	if n, err := pruned.take(a.Events); err != nil || n != 20 {
		t.Fatalf("past the retained history: %d messages (%v), want 11..30", n, err)
	}
	a = ptHeldThenSend(t, e, e.URL, tok, a.Cursor, room, 1)
	if n, err := pruned.take(a.Events); err != nil || n != 1 {
		t.Fatalf("held poll after the stale resume: %d messages (%v), want seq 31", n, err)
	}
}

// ptHeldThenSend opens a poll from cursor, waits until it is held, sends n
// messages to room and returns the answer.
func ptHeldThenSend(t *testing.T, e *Env, base, tok, cursor, room string, n int) ptAnswer {
	t.Helper()
	held := make(chan ptAnswer, 1)
	errs := make(chan error, 1)
	go func() {
		a, err := ptPollErr(base, tok, url.Values{"rooms": {room}, "cursor": {cursor}}, false)
		if err != nil {
			errs <- err
			return
		}
		held <- a
	}()
	eventually(t, "the poll is held", func() bool { return e.Hub.Sessions()["poll"] == 1 })
	for i := range n {
		hubSend(t, e, room, fmt.Sprint("live ", i))
	}
	select {
	case a := <-held:
		return a
	case err := <-errs:
		t.Fatal(err)
	}
	return ptAnswer{}
}

// A held poll with no news parks: the handler hands the connection over
// and returns. News then comes on the parked connection, which closes
// after it; the next poll, on a new connection, goes on exactly. A parked
// poll whose hold ends answers with no events and the same cursor.
func TestPollParked(t *testing.T) {
	const room = "pt-parked"
	e := NewEnv(t, Options{Hub: fast})
	base, hijacked := ptParkingServer(t, e, poll.Config{Park: time.Millisecond, Quiet: -1, Hold: 10 * time.Second})
	tok := e.Token(t, "pt-carol", Claims{})
	fill(t, e, room, 3, "before")
	seqs := &ptSeqs{room: room}
	a := ptPoll(t, base, tok, url.Values{"rooms": {room}, "since": {room + ":0"}}, false)
	if n, err := seqs.take(a.Events); err != nil || n != 3 || a.Closed {
		t.Fatalf("first poll: %d messages (%v), closed %v; want 1..3 on a kept connection", n, err, a.Closed)
	}
	for round := range 3 {
		held := ptHeld(t, base, tok, room, a.Cursor)
		<-hijacked // parked
		fill(t, e, room, 2, fmt.Sprint("round ", round))
		a = ptAnswerOf(t, held)
		if !a.Closed || a.Header.Get("X-Content-Type-Options") != "nosniff" || a.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("a parked poll's answer: closed %v, headers %v; want Connection: close and the middleware's and the answer's headers",
				a.Closed, a.Header)
		}
		if _, err := seqs.take(a.Events); err != nil {
			t.Fatal(err)
		}
		// The two messages may come in one answer or two; a poll for the
		// second may park too (its answer is then in before it returns).
		for seqs.last < uint64(3+2*(round+1)) {
			a = ptPoll(t, base, tok, url.Values{"rooms": {room}, "cursor": {a.Cursor}}, false)
			if _, err := seqs.take(a.Events); err != nil {
				t.Fatal(err)
			}
		}
		for len(hijacked) > 0 {
			<-hijacked // those polls' parks: the next round waits for its own
		}
	}

	short, hijacked := ptParkingServer(t, e, poll.Config{Park: time.Millisecond, Quiet: -1, Hold: 50 * time.Millisecond})
	held := ptHeld(t, short, tok, room, a.Cursor)
	<-hijacked
	empty := ptAnswerOf(t, held)
	if len(empty.Events) != 0 || empty.Cursor != a.Cursor || !empty.Closed {
		t.Fatalf("a parked poll whose hold ended: %d events, cursor moved %v, closed %v; want none, same cursor, closed",
			len(empty.Events), empty.Cursor != a.Cursor, empty.Closed)
	}
	hubSend(t, e, room, "after the hold")
	if n, err := seqs.take(ptPoll(t, base, tok, url.Values{"rooms": {room}, "cursor": {empty.Cursor}}, false).Events); err != nil || n != 1 {
		t.Fatalf("after an empty parked answer: %d messages (%v), want exactly the next", n, err)
	}
}

// A held poll whose session answered with news within Config.Quiet
// waits in net/http instead of parking, until Quiet has passed since
// that news: its connection stays open for the next poll. The same
// polls park on a server that parks whatever came before, and on one
// whose Quiet passes within the hold.
func TestPollBusyNotParked(t *testing.T) {
	const room = "pt-busy"
	e := NewEnv(t, Options{Hub: fast})
	tok := e.Token(t, "pt-erin", Claims{})
	fill(t, e, room, 2, "before")
	for _, tc := range []struct {
		name        string
		quiet, hold time.Duration
		parks       bool
	}{
		{"news within quiet", time.Hour, 50 * time.Millisecond, false},
		{"parks whatever came before", -1, 10 * time.Second, true},
		{"parks once quiet", 20 * time.Millisecond, 10 * time.Second, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base, hijacked := ptParkingServer(t, e, poll.Config{Park: time.Millisecond, Hold: tc.hold, Quiet: tc.quiet})
			first := ptPoll(t, base, tok, url.Values{"rooms": {room}, "since": {room + ":0"}}, false)
			hubSend(t, e, room, "news for "+tc.name)
			// A session opened from the cursor replays the message: an
			// answer with news, and the session is kept.
			a := ptPoll(t, base, tok, url.Values{"rooms": {room}, "cursor": {first.Cursor}}, false)
			if len(a.Events) != 1 || a.Closed {
				t.Fatalf("the poll after news: %d events, closed %v; want 1 on a kept connection", len(a.Events), a.Closed)
			}
			for len(hijacked) > 0 {
				<-hijacked
			}
			// Nothing new: the kept session's poll waits Park (or until
			// Quiet has passed since the news).
			if !tc.parks {
				// ... and then the rest of its hold, on its connection.
				empty := ptPoll(t, base, tok, url.Values{"rooms": {room}, "cursor": {a.Cursor}}, false)
				if len(empty.Events) != 0 || empty.Cursor != a.Cursor || empty.Closed || len(hijacked) > 0 {
					t.Fatalf("an empty hold: %d events, cursor moved %v, closed %v, parked %v; want none on its connection",
						len(empty.Events), empty.Cursor != a.Cursor, empty.Closed, len(hijacked) > 0)
				}
				return
			}
			held := ptHeld(t, base, tok, room, a.Cursor)
			<-hijacked // parked
			hubSend(t, e, room, "after the park")
			if parked := ptAnswerOf(t, held); len(parked.Events) != 1 || !parked.Closed {
				t.Fatalf("a parked poll's answer: %d events, closed %v; want 1 and Connection: close", len(parked.Events), parked.Closed)
			}
		})
	}
}

// A parked poll whose client goes away ends its session; a parked poll
// the hub shuts down answers, and the cursor resumes on the next server.
func TestPollParkedEnds(t *testing.T) {
	const room = "pt-parked-end"
	e := NewEnv(t, Options{Hub: fast})
	base, hijacked := ptParkingServer(t, e, poll.Config{Park: time.Millisecond, Quiet: -1})
	tok := e.Token(t, "pt-dave", Claims{})
	a := ptPoll(t, base, tok, url.Values{"rooms": {room}, "since": {room + ":0"}}, false)

	ctx, cancel := context.WithCancel(Ctx(t))
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/poll?"+url.Values{"rooms": {room}, "cursor": {a.Cursor}}.Encode(), nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	gone := make(chan error, 1)
	go func() {
		resp, err := ptClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		gone <- err
	}()
	<-hijacked
	cancel() // the client goes away
	if err := <-gone; err == nil {
		t.Fatal("a cancelled poll got an answer")
	}
	eventually(t, "the parked session ends with its client", func() bool { return e.Hub.Sessions()["poll"] == 0 })

	held := ptHeld(t, base, tok, room, a.Cursor)
	<-hijacked
	e.Restart(t) // the old hub shuts down: the parked poll answers
	down := ptAnswerOf(t, held)
	if len(down.Events) != 0 || down.Cursor != a.Cursor {
		t.Fatalf("a parked poll at shutdown: %d events, cursor moved %v; want none, same cursor", len(down.Events), down.Cursor != a.Cursor)
	}
	fill(t, e, room, 2, "on the new server")
	seqs := &ptSeqs{room: room}
	if n, err := seqs.take(ptPoll(t, e.URL, tok, url.Values{"rooms": {room}, "cursor": {down.Cursor}}, false).Events); err != nil || n != 2 {
		t.Fatalf("after the restart: %d messages (%v), want 1..2", n, err)
	}
}

// ptHeld opens a poll from cursor and returns where its answer will come.
func ptHeld(t *testing.T, base, tok, room, cursor string) <-chan ptResult {
	t.Helper()
	out := make(chan ptResult, 1)
	go func() {
		a, err := ptPollErr(base, tok, url.Values{"rooms": {room}, "cursor": {cursor}}, false)
		out <- ptResult{a, err}
	}()
	return out
}

type ptResult struct {
	a   ptAnswer
	err error
}

func ptAnswerOf(t *testing.T, c <-chan ptResult) ptAnswer {
	t.Helper()
	r := <-c
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.a
}
