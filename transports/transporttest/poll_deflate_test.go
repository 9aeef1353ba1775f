package transporttest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/transports/inflate"
	"github.com/chatd/chatd/transports/poll"
)

// ptDeflated is one answer to a poll with deflate=: its kind ('c': the
// stream goes on, 'n': a new one, '{': plain JSON), the answer and its
// size on the wire.
type ptDeflated struct {
	kind byte
	ptAnswer
	plain int // the JSON's length
}

// ptText is the text of the tests' messages: typical chat text.
const ptText = "a typical chat message, of the kind people send to each other all day"

// want checks one deflated answer: no error, the kind, and n more
// messages of seqs' room, each once, in order.
func (seqs *ptSeqs) want(t *testing.T, what string, d ptDeflated, err error, kind byte, n int) ptDeflated {
	t.Helper()
	if err != nil || d.kind != kind {
		t.Fatalf("%s: an answer of kind %q (%v), want %q", what, d.kind, err, kind)
	}
	if got, err := seqs.take(d.Events); err != nil || got != n {
		t.Fatalf("%s: %d messages (%v), want %d", what, got, err, n)
	}
	return d
}

// ptGet makes one poll with query q, as the client with key (its
// X-Chat-Client; "": none), and returns its answer's header and body,
// unread: an error unless it is a 200.
func ptGet(base, tok, key string, q url.Values) (http.Header, []byte, error) {
	req, err := http.NewRequest(http.MethodGet, base+"/v1/poll?"+q.Encode(), nil)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	if key != "" {
		req.Header.Set("X-Chat-Client", key)
	}
	resp, err := ptClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("poll: HTTP %d: %s", resp.StatusCode, raw)
	}
	return resp.Header, raw, err
}

// ptDeflatePoll makes one poll with deflate=mode and reads its answer
// into z, as a client that follows the stream does, with the client key
// ptKey (a keyless client's stream never goes on).
func ptDeflatePoll(base, tok string, q url.Values, mode string, z *inflate.Stream) (ptDeflated, error) {
	return ptDeflatePollAs(base, tok, ptKey, q, mode, z)
}

// ptKey is the client key of ptDeflatePoll's polls.
const ptKey = "pt-client"

// ptDeflatePollAs is ptDeflatePoll as the client with key ("": none).
func ptDeflatePollAs(base, tok, key string, q url.Values, mode string, z *inflate.Stream) (ptDeflated, error) {
	q.Set("deflate", mode)
	header, raw, err := ptGet(base, tok, key, q)
	if err != nil {
		return ptDeflated{}, err
	}
	d := ptDeflated{ptAnswer: ptAnswer{Encoding: header.Get("Content-Encoding"), Wire: len(raw), Header: header}}
	body := raw
	switch {
	case len(raw) > 0 && raw[0] == '{':
		d.kind = '{'
		z.Reset()
		if ct := header.Get("Content-Type"); ct != "application/json" {
			return d, fmt.Errorf("a JSON answer with Content-Type %q", ct)
		}
	default:
		line, rest, ok := bytes.Cut(raw, []byte("\n"))
		if !ok || len(line) < 2 || (line[0] != 'c' && line[0] != 'n') {
			return d, fmt.Errorf("neither JSON nor a deflated chunk: %q", raw)
		}
		if ct := header.Get("Content-Type"); ct != "application/octet-stream" || d.Encoding != "" {
			return d, fmt.Errorf("a deflated answer with Content-Type %q, Content-Encoding %q", ct, d.Encoding)
		}
		length, sum, _ := bytes.Cut(line[1:], []byte(" "))
		size, err := strconv.Atoi(string(length))
		if err != nil {
			return d, err
		}
		d.kind = line[0]
		if d.kind == 'n' {
			z.Reset()
		}
		if body, err = z.Inflate(nil, rest, size); err != nil {
			return d, fmt.Errorf("kind %c: %w", d.kind, err)
		}
		if got := fmt.Sprintf("%08x", crc32.ChecksumIEEE(body)); got != string(sum) {
			z.Reset()
			return d, fmt.Errorf("kind %c: the JSON's CRC-32 is %s, the answer says %q: inflated against a window that is not the server's", d.kind, got, sum)
		}
	}
	d.plain = len(body)
	if err := json.Unmarshal(body, &d.ptAnswer); err != nil {
		return d, fmt.Errorf("poll answer %q: %w", body, err)
	}
	return d, nil
}

// A poll with deflate= gets its answers as one deflate stream: a new one
// ('n') wherever the client's window may not be the server's (a first
// poll, a new session, a lost answer, an answer that left the cursor
// where it was, compression turned off and on), and the stream going on
// ('c') from a kept session, each answer far smaller than its JSON. The
// messages come once each, in order, whatever the stream does, and an
// answer lost on the way costs nothing but the stream.
func TestPollDeflatedStream(t *testing.T) {
	const room = "pt-deflate"
	e := NewEnv(t, Options{Hub: fast})
	var mu sync.Mutex
	allow := true
	base := ptServer(t, e, poll.Config{Hold: 10 * time.Second, Park: -1, Compress: func(string) bool {
		mu.Lock()
		defer mu.Unlock()
		return allow
	}})
	tok := e.Token(t, "pt-z", Claims{})
	fill(t, e, room, 5, ptText)
	seqs := &ptSeqs{room: room}
	var z inflate.Stream
	pollAt := func(cursor, mode string) (ptDeflated, error) {
		return ptDeflatePoll(base, tok, url.Values{"rooms": {room}, "cursor": {cursor}}, mode, &z)
	}
	// held polls from cursor, and calls send once the poll is held.
	held := func(cursor, mode string, send func()) (ptDeflated, error) {
		done := make(chan struct{})
		var d ptDeflated
		var err error
		go func() {
			defer close(done)
			d, err = pollAt(cursor, mode)
		}()
		eventually(t, "the poll is held", func() bool { return e.Hub.Sessions()["poll"] == 1 })
		send()
		<-done
		return d, err
	}

	d, err := ptDeflatePoll(base, tok, url.Values{"rooms": {room}, "since": {room + ":0"}}, "new", &z)
	d = seqs.want(t, "the first poll", d, err, 'n', 5)
	// A new session for the next poll (the first one's is not kept).
	d, err = held(d.Cursor, "1", func() { fill(t, e, room, 1, ptText) })
	d = seqs.want(t, "a new session", d, err, 'n', 1)
	// From now on the session is kept, and the stream goes on.
	for i := range 3 {
		fill(t, e, room, 1, ptText)
		d, err = pollAt(d.Cursor, "1")
		d = seqs.want(t, fmt.Sprint("kept session, answer ", i), d, err, 'c', 1)
		if d.Wire*2 > d.plain {
			t.Fatalf("a deflated answer of one message is %d bytes on the wire for %d of JSON: want at least 2x smaller", d.Wire, d.plain)
		}
	}
	// An answer lost on the way: the client polls again from the cursor
	// before it, its window without it. A new stream, the message again.
	fill(t, e, room, 1, ptText)
	if kind := lose(t, base, tok, url.Values{"rooms": {room}, "cursor": {d.Cursor}}, nil); kind != 'c' {
		t.Fatalf("the answer to lose: kind %q, want c", kind)
	}
	d, err = pollAt(d.Cursor, "1")
	d = seqs.want(t, "after a lost answer", d, err, 'n', 1)
	// An answer that leaves the cursor where it is (typing only), lost:
	// the client polls from the same cursor, and the stream starts over.
	cursor := d.Cursor
	if kind := lose(t, base, tok, url.Values{"rooms": {room}, "cursor": {cursor}}, func() {
		eventually(t, "the poll is held", func() bool { return e.Hub.Sessions()["poll"] == 1 })
		if err := e.Hub.Typing(Ctx(t), auth.Identity{User: "pt-other", Name: "Other"}, room); err != nil {
			t.Errorf("typing: %v", err)
		}
	}); kind != 'c' {
		t.Fatalf("the typing answer to lose: kind %q, want c", kind)
	}
	fill(t, e, room, 1, ptText)
	d, err = pollAt(cursor, "1")
	d = seqs.want(t, "after an answer that left the cursor, lost", d, err, 'n', 1)
	// One message, then a poll from the last answer's cursor.
	next := func(what, mode string, kind byte) {
		t.Helper()
		fill(t, e, room, 1, ptText)
		d, err = pollAt(d.Cursor, mode)
		d = seqs.want(t, what, d, err, kind, 1)
	}
	setAllow := func(v bool) {
		mu.Lock()
		allow = v
		mu.Unlock()
	}
	next("deflate=new on a kept session", "new", 'n')
	// Compression off for the user: JSON; back on: a new stream.
	setAllow(false)
	next("compression off", "1", '{')
	setAllow(true)
	next("compression on again", "1", 'n')
	next("and on", "1", 'c')
}

// lose makes a poll with deflate=1 and drops its answer unread, as a
// client whose answer was lost on the way; send, if set, runs while the
// poll is on its way. It returns the answer's kind.
func lose(t *testing.T, base, tok string, q url.Values, send func()) byte {
	t.Helper()
	q.Set("deflate", "1")
	type result struct {
		raw []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		_, raw, err := ptGet(base, tok, ptKey, q)
		done <- result{raw, err}
	}()
	if send != nil {
		send()
	}
	r := <-done
	if r.err != nil || len(r.raw) == 0 {
		t.Fatalf("the poll to lose: %q, %v", r.raw, r.err)
	}
	return r.raw[0]
}

// A parked poll (quiet for its Park) drops its session's stream: its
// answer, written by the session when news comes, starts a new one, and
// the next poll goes on with it.
func TestPollDeflatedParked(t *testing.T) {
	const room = "pt-deflate-park"
	e := NewEnv(t, Options{Hub: fast})
	base, hijacked := ptParkingServer(t, e, poll.Config{Hold: 10 * time.Second, Park: 20 * time.Millisecond, Quiet: -1,
		Compress: func(string) bool { return true }})
	tok := e.Token(t, "pt-zp", Claims{})
	fill(t, e, room, 3, ptText)
	seqs := &ptSeqs{room: room}
	var z inflate.Stream
	d, err := ptDeflatePoll(base, tok, url.Values{"rooms": {room}, "since": {room + ":0"}}, "new", &z)
	d = seqs.want(t, "the first poll", d, err, 'n', 3)
	for i := range 2 {
		type result struct {
			d   ptDeflated
			err error
		}
		done := make(chan result, 1)
		go func() {
			a, err := ptDeflatePoll(base, tok, url.Values{"rooms": {room}, "cursor": {d.Cursor}}, "1", &z)
			done <- result{a, err}
		}()
		<-hijacked // parked
		fill(t, e, room, 1, ptText)
		r := <-done
		d = seqs.want(t, fmt.Sprint("parked answer ", i), r.d, r.err, 'n', 1)
	}
	fill(t, e, room, 1, ptText)
	d, err = ptDeflatePoll(base, tok, url.Values{"rooms": {room}, "cursor": {d.Cursor}}, "1", &z)
	seqs.want(t, "after a parked answer", d, err, 'c', 1)
}

// Two devices of one user that send no client key (X-Chat-Client), in
// step, have their sessions kept at the same position: the next poll of
// either may take the other's, whose stream is not its window. Neither
// stream goes on: the next answer starts a new one.
func TestPollDeflatedKeylessInStep(t *testing.T) {
	const room = "pt-deflate-keyless"
	e := NewEnv(t, Options{Hub: fast})
	base := ptServer(t, e, poll.Config{Hold: 10 * time.Second, Park: -1, Compress: func(string) bool { return true }})
	tok := e.Token(t, "pt-zk", Claims{})
	fill(t, e, room, 2, ptText)
	var za, zb inflate.Stream
	start := func(z *inflate.Stream) ptDeflated {
		d, err := ptDeflatePollAs(base, tok, "", url.Values{"rooms": {room}, "since": {room + ":0"}}, "new", z)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	a0, b0 := start(&za), start(&zb)
	if a0.Cursor != b0.Cursor {
		t.Fatalf("the devices are not in step: %q and %q", a0.Cursor, b0.Cursor)
	}
	// Both held from the same cursor, both answered with the same news:
	// two sessions kept at one position.
	var wg sync.WaitGroup
	var a1, b1 ptDeflated
	var errA, errB error
	wg.Add(2)
	go func() {
		defer wg.Done()
		a1, errA = ptDeflatePollAs(base, tok, "", url.Values{"rooms": {room}, "cursor": {a0.Cursor}}, "1", &za)
	}()
	go func() {
		defer wg.Done()
		b1, errB = ptDeflatePollAs(base, tok, "", url.Values{"rooms": {room}, "cursor": {b0.Cursor}}, "1", &zb)
	}()
	eventually(t, "both polls held", func() bool { return e.Hub.Sessions()["poll"] == 2 })
	fill(t, e, room, 1, ptText)
	wg.Wait()
	if errA != nil || errB != nil || a1.Cursor != b1.Cursor {
		t.Fatalf("the held polls: %v, %v, cursors %q and %q", errA, errB, a1.Cursor, b1.Cursor)
	}
	fill(t, e, room, 1, ptText)
	for _, dev := range []struct {
		name string
		z    *inflate.Stream
	}{{"a", &za}, {"b", &zb}} {
		d, err := ptDeflatePollAs(base, tok, "", url.Values{"rooms": {room}, "cursor": {a1.Cursor}}, "1", dev.z)
		if err != nil || d.kind != 'n' {
			t.Fatalf("device %s after two sessions kept at one position: kind %q (%v), want n", dev.name, d.kind, err)
		}
	}
}

// A poll that resumes from a cursor holding a room it no longer follows
// (a leave) is matched to its kept session by the rooms it follows: an
// answer that moved none of those positions leaves the stream to start
// over, although its cursor differs from the poll's as a string.
func TestPollDeflatedFilteredCursor(t *testing.T) {
	const ra, rb = "pt-deflate-fa", "pt-deflate-fb"
	e := NewEnv(t, Options{Hub: fast})
	base := ptServer(t, e, poll.Config{Hold: 10 * time.Second, Park: -1, Compress: func(string) bool { return true }})
	tok := e.Token(t, "pt-zf", Claims{})
	fill(t, e, ra, 2, ptText)
	fill(t, e, rb, 1, ptText)
	var z inflate.Stream
	a0, err := ptDeflatePoll(base, tok, url.Values{"rooms": {ra + "," + rb}, "since": {ra + ":0," + rb + ":0"}}, "new", &z)
	if err != nil || a0.kind != 'n' {
		t.Fatalf("first poll: kind %q (%v)", a0.kind, err)
	}
	// rb left; a typing answer, lost.
	lose(t, base, tok, url.Values{"rooms": {ra}, "cursor": {a0.Cursor}}, func() {
		eventually(t, "the poll is held", func() bool { return e.Hub.Sessions()["poll"] == 1 })
		if err := e.Hub.Typing(Ctx(t), auth.Identity{User: "pt-other", Name: "Other"}, ra); err != nil {
			t.Errorf("typing: %v", err)
		}
	})
	fill(t, e, ra, 1, ptText)
	d, err := ptDeflatePoll(base, tok, url.Values{"rooms": {ra}, "cursor": {a0.Cursor}}, "1", &z)
	if err != nil || d.kind != 'n' {
		t.Fatalf("the retry of a lost answer: kind %q (%v), want n", d.kind, err)
	}
}
