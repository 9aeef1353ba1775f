package transporttest

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/protocol"
	"github.com/chatd/chatd/transports/httpx"
	"github.com/chatd/chatd/transports/sse"
)

// The SSE tier writes its streams itself: a batch of events is one
// write, the data lines of a broadcast are built once for all its streams,
// and a stream may be gzipped. These tests read streams byte by byte (no
// client that dedupes or reorders) and check that every seq arrives once,
// in order, with the cursor after it as the event's id.

// swEvent is one event of a stream.
type swEvent struct {
	id  string
	env protocol.Envelope
}

// swStream is one event stream read by hand.
type swStream struct {
	resp  *http.Response
	wire  *countingReader // the body as it came off the connection
	sc    *bufio.Scanner
	plain int // bytes of event text read
}

type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// swOpen opens base/v1/sse?query for token, resuming from lastID if it is
// set, and asking for gzip if gz. Go's client then leaves the body as it
// came, so the test reads the gzip stream itself.
func swOpen(t testing.TB, client *http.Client, base, token, query, lastID string, gz bool) *swStream {
	t.Helper()
	req, _ := http.NewRequestWithContext(Ctx(t), http.MethodGet, base+"/v1/sse?"+query, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept-Encoding", "identity")
	if gz {
		req.Header.Set("Accept-Encoding", "gzip")
	}
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("HTTP %d, %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if got := resp.Header.Get("Content-Encoding") == "gzip"; got != gz {
		t.Fatalf("asked for gzip: %v; Content-Encoding: %q", gz, resp.Header.Get("Content-Encoding"))
	}
	s := &swStream{resp: resp, wire: &countingReader{r: resp.Body}}
	var body io.Reader = s.wire
	if gz {
		zr, err := gzip.NewReader(s.wire)
		if err != nil {
			t.Fatalf("gzip header: %v", err)
		}
		body = zr
	}
	s.sc = bufio.NewScanner(body)
	s.sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	return s
}

// next returns the next event that has data; ok is false at the stream's
// end, which must be clean (for gzip: a complete member, its checksum
// right).
func (s *swStream) next(t testing.TB) (ev swEvent, ok bool) {
	t.Helper()
	var data string
	for s.sc.Scan() {
		line := s.sc.Text()
		s.plain += len(line) + 1
		switch {
		case line == "" && data != "":
			if err := json.Unmarshal([]byte(data), &ev.env); err != nil {
				t.Fatalf("event data %q: %v", data, err)
			}
			if ev.id == "" {
				t.Fatalf("an event with no id: %q", data)
			}
			return ev, true
		case line == "":
			ev.id = ""
		case strings.HasPrefix(line, "data: "):
			data += strings.TrimPrefix(line, "data: ")
		case strings.HasPrefix(line, "id: "):
			ev.id = strings.TrimPrefix(line, "id: ")
		}
	}
	if err := s.sc.Err(); err != nil {
		t.Fatalf("stream ended: %v", err)
	}
	return ev, false
}

// nextMessage skips to the next message event. Anything but a message,
// a ping, a control, a joined or presence event fails the test.
func (s *swStream) nextMessage(t testing.TB) swEvent {
	t.Helper()
	for {
		ev, ok := s.next(t)
		if !ok {
			t.Fatal("stream ended before the next message")
		}
		switch ev.env.Type {
		case protocol.TypeMessage:
			return ev
		case protocol.TypePing, protocol.TypeControl, protocol.TypeJoined, protocol.TypePresence:
		default:
			t.Fatalf("unexpected %+v", ev.env)
		}
	}
}

// expect reads messages from..to of room, once each and in order, each
// with the cursor after it as its id, and returns their events.
func (s *swStream) expect(t testing.TB, room string, from, to uint64) []swEvent {
	t.Helper()
	var out []swEvent
	for seq := from; seq <= to; seq++ {
		ev := s.nextMessage(t)
		if ev.env.Room != room || ev.env.Seq != seq {
			t.Fatalf("got %s/%d, want %s/%d", ev.env.Room, ev.env.Seq, room, seq)
		}
		cur, err := protocol.ParseCursor(ev.id)
		if err != nil || cur[room] != seq {
			t.Fatalf("message %d has id %q (%v, %v)", seq, ev.id, cur, err)
		}
		out = append(out, ev)
	}
	return out
}

// untilJoined reads to the joined event of room.
func (s *swStream) untilJoined(t testing.TB, room string) {
	t.Helper()
	for {
		ev, ok := s.next(t)
		if !ok {
			t.Fatal("stream ended before joined")
		}
		if ev.env.Type == protocol.TypeJoined && ev.env.Room == room {
			return
		}
	}
}

// swServer serves an SSE handler of its own over e's hub: a test can give
// it a config the Env's does not.
func swServer(t testing.TB, e *Env, cfg sse.Config, h2 bool) *httptest.Server {
	cfg.Hub = e.Hub
	cfg.Auth = &httpx.Authenticator{Verifier: e.Verifier, Tickets: e.Tickets}
	srv := httptest.NewUnstartedServer(sse.New(cfg))
	if h2 {
		srv.EnableHTTP2 = true
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
	})
	return srv
}

// A burst of broadcasts reaches every stream once each, in order, with
// the right cursor as id; the streams share each broadcast's data lines
// and write what queued up in batches.
func TestSSEWriterBurstExactlyOnce(t *testing.T) {
	const room, n = "burst", 300
	e := NewEnv(t, Options{Hub: fast})
	var streams []*swStream
	for _, user := range []string{"ann", "bob", "cy"} {
		s := swOpen(t, http.DefaultClient, e.URL, e.Token(t, user, Claims{}), "rooms="+room, "", false)
		s.untilJoined(t, room)
		streams = append(streams, s)
	}
	// A stream following two rooms has its own cursor, covering both and
	// the user's own stream.
	two := swOpen(t, http.DefaultClient, e.URL, e.Token(t, "dee", Claims{}), "rooms="+room+",other", "", false)
	two.untilJoined(t, room)
	two.untilJoined(t, "other")
	two.untilJoined(t, protocol.UserRoom)
	fill(t, e, room, n, "a burst of chat")
	for _, s := range streams {
		s.expect(t, room, 1, n)
	}
	for _, ev := range two.expect(t, room, 1, n) {
		if cur, _ := protocol.ParseCursor(ev.id); len(cur) != 3 || cur[protocol.UserRoom] == 0 {
			t.Fatalf("two rooms and the user's stream, cursor %v", cur)
		}
	}
	streams = append(streams, two)
	hubSend(t, e, room, "fence")
	for _, s := range streams {
		s.expect(t, room, n+1, n+1)
	}
}

// A gzipped stream carries the same events as a plain one, in fewer
// bytes; turning compression off and on again mid-stream loses and
// doubles nothing; a compressed stream resumes from any event's id; and
// a stream the server ends finishes its gzip member (the checksum is
// checked at the end).
func TestSSEWriterGzip(t *testing.T) {
	const room = "zipped"
	e := NewEnv(t, Options{Hub: fast})
	var compress atomic.Bool
	compress.Store(true)
	srv := swServer(t, e, sse.Config{Compress: func(string) bool { return compress.Load() }}, false)
	zipped := swOpen(t, http.DefaultClient, srv.URL, e.Token(t, "zed", Claims{}), "rooms="+room, "", true)
	plain := swOpen(t, http.DefaultClient, srv.URL, e.Token(t, "pat", Claims{}), "rooms="+room, "", false)
	if !strings.Contains(zipped.resp.Header.Get("Vary"), "Accept-Encoding") {
		t.Fatalf("Vary: %q", zipped.resp.Header.Get("Vary"))
	}
	zipped.untilJoined(t, room)
	plain.untilJoined(t, room)

	var ids []string // ids[seq] on the zipped stream
	ids = append(ids, "")
	step := func(from, to uint64) {
		fill(t, e, room, int(to-from+1), "did you see the game last night? it was wild")
		for _, ev := range zipped.expect(t, room, from, to) {
			ids = append(ids, ev.id)
		}
		plain.expect(t, room, from, to)
	}
	step(1, 100)
	compress.Store(false)
	step(101, 150)
	compress.Store(true)
	step(151, 200)
	if zw, pw := zipped.wire.n.Load(), plain.wire.n.Load(); zw >= pw {
		t.Fatalf("gzipped stream took %d bytes, plain %d", zw, pw)
	}

	resumed := swOpen(t, http.DefaultClient, srv.URL, e.Token(t, "zed", Claims{}), "rooms="+room, ids[120], true)
	resumed.expect(t, room, 121, 200)
	hubSend(t, e, room, "fence")
	for _, s := range []*swStream{zipped, plain, resumed} {
		s.expect(t, room, 201, 201)
	}

	// The server ends zed's streams: each ends with its disconnect event
	// and a complete gzip member.
	e.Hub.ForEachSession(func(s *core.Session) {
		if s.User() == "zed" {
			s.Close(core.DisconnectNormal)
		}
	})
	for _, s := range []*swStream{zipped, resumed} {
		var last protocol.Envelope
		for {
			ev, ok := s.next(t)
			if !ok {
				break
			}
			last = ev.env
		}
		if last.Type != protocol.TypeDisconnect || last.CloseCode != core.DisconnectNormal.Code {
			t.Fatalf("last event %+v, want the disconnect", last)
		}
	}
}

// tinyReadClient is an HTTP client whose connections have a 4 KiB
// receive buffer, as tinyReadBuffer's: a stream it stops reading soon
// fills the server's socket.
func tinyReadClient(t testing.TB) *http.Client {
	tr := &http.Transport{DialContext: (&net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return setReadBuffer(rc, 4096)
	}}).DialContext}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// A stream whose client stops reading is closed as slow once a batch
// makes no progress for the write timeout; the client resumes from the
// last event it read and gets every later message once.
func TestSSEWriterSlowStreamEvicted(t *testing.T) {
	const room = "firehose"
	cfg := fast
	cfg.QueueFrames, cfg.QueueBytes = 1<<20, 1<<30 // the write deadline decides, not the queue
	e := NewEnv(t, Options{Hub: cfg})
	srv := swServer(t, e, sse.Config{WriteTimeout: 300 * time.Millisecond}, false)
	tok := e.Token(t, "sloth", Claims{})
	s := swOpen(t, tinyReadClient(t), srv.URL, tok, "rooms="+room, "", false)
	s.untilJoined(t, room)

	// Stop reading and publish until the server gives the stream up.
	slow := e.Hub.Stats().SlowClosed
	text := strings.Repeat("x", 4000)
	sent := 0
	for e.Hub.Stats().SlowClosed == slow {
		if sent >= 20000 {
			t.Fatalf("sent %d messages of %d bytes and the stream is still open", sent, len(text))
		}
		fill(t, e, room, 32, text)
		sent += 32
	}
	if f := e.Hub.Stats().Failures[sse.Name]; f == 0 {
		t.Fatal("the slow close is not counted against sse")
	}

	// Read what arrived: a run from seq 1, cut anywhere.
	var last swEvent
	for {
		ev, ok := s.next(t)
		if !ok {
			break
		}
		switch ev.env.Type {
		case protocol.TypeMessage:
			if ev.env.Seq != last.env.Seq+1 {
				t.Fatalf("got %d after %d", ev.env.Seq, last.env.Seq)
			}
			last = ev
		case protocol.TypeDisconnect:
			if ev.env.CloseCode != protocol.CloseSlow {
				t.Fatalf("disconnect %+v", ev.env)
			}
		}
	}
	if last.env.Seq >= uint64(sent) {
		t.Fatalf("got all %d messages: the stream was never behind", sent)
	}
	t.Logf("slow after %d messages; %d read", sent, last.env.Seq)

	again := swOpen(t, http.DefaultClient, srv.URL, tok, "rooms="+room, last.id, false)
	again.expect(t, room, last.env.Seq+1, uint64(sent))
	hubSend(t, e, room, "fence")
	again.expect(t, room, uint64(sent)+1, uint64(sent)+1)
}

// Over HTTP/2, where the connection cannot be taken over, the stream goes
// through the ResponseWriter: the same events once each, the session
// closed when the client cancels, and an exact resume.
func TestSSEWriterHTTP2(t *testing.T) {
	const room = "h2"
	e := NewEnv(t, Options{Hub: fast})
	srv := swServer(t, e, sse.Config{}, true)
	client := srv.Client()
	tok := e.Token(t, "hana", Claims{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/v1/sse?rooms="+room, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Fatalf("served over %s", resp.Proto)
	}
	s := &swStream{resp: resp, wire: &countingReader{r: resp.Body}}
	s.sc = bufio.NewScanner(s.wire)
	s.untilJoined(t, room)
	fill(t, e, room, 50, "over h2")
	evs := s.expect(t, room, 1, 50)

	cancel()
	eventually(t, "the session to close", func() bool { return e.Hub.Sessions()[sse.Name] == 0 })

	again := swOpen(t, client, srv.URL, tok, "rooms="+room, evs[19].id, false)
	if again.resp.ProtoMajor != 2 {
		t.Fatalf("resumed over %s", again.resp.Proto)
	}
	again.expect(t, room, 21, 50)
	hubSend(t, e, room, "fence")
	again.expect(t, room, 51, 51)
}
