package httpx_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatd/chatd/transports/httpx"
)

// panickedDone hears when the context of a request whose handler
// panicked on a lane has ended.
var panickedDone = make(chan struct{}, 1)

// laneServer serves h on a loopback listener with a Lane for /poll
// attached, as chatd does; the poll route's handler answers with the
// request's query and a count, and takes the connection over. It
// returns the address and the lane; the cleanup closes both.
func laneServer(t *testing.T, wrap func(http.Handler) http.Handler) (string, *httpx.Lane) {
	t.Helper()
	return laneServerIdle(t, wrap, 30*time.Second)
}

// laneServerIdle is laneServer with the server's IdleTimeout idle.
func laneServerIdle(t *testing.T, wrap func(http.Handler) http.Handler, idle time.Duration) (string, *httpx.Lane) {
	t.Helper()
	lane := httpx.NewLane("/poll")
	var n atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("GET /poll", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("panic") != "" && httpx.InLane(r) {
			context.AfterFunc(r.Context(), func() { panickedDone <- struct{}{} })
			panic("boom")
		}
		body := fmt.Sprintf("poll %d %s lane=%v", n.Add(1), r.URL.RawQuery, httpx.InLane(r))
		if v := r.URL.Query().Get("mark"); v != "" {
			w.Header().Set("X-Mark", v)
		}
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		_, _ = io.WriteString(w, body)
		if r.URL.Query().Get("take") != "no" {
			lane.Take(w, r)
		}
	})
	mux.HandleFunc("POST /send", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "sent %s", b)
	})
	var h http.Handler = mux
	if wrap != nil {
		h = wrap(h)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: idle,
		MaxHeaderBytes: 2048, ErrorLog: log.New(io.Discard, "", 0)}
	return httpx.ServeLaneTest(t, lane, srv), lane
}

// rawConn is one client connection that writes requests as given and
// reads answers with net/http's parser.
type rawConn struct {
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{c: c, br: bufio.NewReader(c)}
}

// do writes req and reads one answer: its status and body.
func (rc *rawConn) do(t *testing.T, req string) (int, string) {
	t.Helper()
	if _, err := io.WriteString(rc.c, req); err != nil {
		t.Fatal(err)
	}
	return rc.read(t)
}

func (rc *rawConn) read(t *testing.T) (int, string) {
	t.Helper()
	_ = rc.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(rc.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func get(path string) string { return "GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n" }

// TestLaneServesKeptAlivePolls: after the first poll is taken over, the
// connection's next polls are answered by the lane, through the
// server's handler, in order, on the same connection.
func TestLaneServesKeptAlivePolls(t *testing.T) {
	addr, lane := laneServer(t, nil)
	rc := dialRaw(t, addr)
	for i := 1; i <= 5; i++ {
		code, body := rc.do(t, get(fmt.Sprintf("/poll?i=%d", i)))
		want := fmt.Sprintf("poll %d i=%d lane=%v", i, i, i > 1)
		if code != 200 || body != want {
			t.Fatalf("poll %d: %d %q, want 200 %q", i, code, body, want)
		}
	}
	if got := lane.Served(); got != 4 {
		t.Errorf("lane served %d requests, want 4", got)
	}
}

// TestLaneIdleTimeout: a lane closes a connection that stays idle past
// the server's IdleTimeout after the polls it served, though it sets the
// read deadline once per slack rather than before every poll.
func TestLaneIdleTimeout(t *testing.T) {
	addr, lane := laneServerIdle(t, nil, 200*time.Millisecond)
	rc := dialRaw(t, addr)
	for i := 1; i <= 5; i++ {
		if code, _ := rc.do(t, get(fmt.Sprintf("/poll?i=%d", i))); code != 200 {
			t.Fatalf("poll %d: %d", i, code)
		}
	}
	if got := lane.Served(); got != 4 {
		t.Fatalf("lane served %d requests, want 4", got)
	}
	_ = rc.c.SetReadDeadline(time.Now().Add(20 * time.Second)) // a bound on a hang, not a timing
	if _, err := rc.br.ReadByte(); err != io.EOF {
		t.Fatalf("an idle lane connection: %v, want it closed (EOF)", err)
	}
}

// TestLaneGivesBackWhatItDoesNotServe: a request the lane does not serve
// (another route, a body, a pipelined pair) goes back to net/http with
// every byte, and a later poll comes back to the lane.
func TestLaneGivesBackWhatItDoesNotServe(t *testing.T) {
	addr, lane := laneServer(t, nil)
	rc := dialRaw(t, addr)
	rc.do(t, get("/poll?i=1"))
	code, body := rc.do(t, "POST /send HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
	if code != 200 || body != "sent hello" {
		t.Fatalf("send after a taken poll: %d %q", code, body)
	}
	if lane.Returned() != 1 {
		t.Fatalf("lane gave back %d connections, want 1", lane.Returned())
	}
	if _, body := rc.do(t, get("/poll?i=2")); !strings.HasSuffix(body, "lane=false") {
		t.Fatalf("first poll after the give-back: %q, want it served by net/http", body)
	}
	if _, body := rc.do(t, get("/poll?i=3")); !strings.HasSuffix(body, "lane=true") {
		t.Fatalf("next poll: %q, want it served by the lane", body)
	}
	// A pipelined send and poll: the send goes back, the poll with it.
	if _, err := io.WriteString(rc.c, "POST /send HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi"+get("/poll?i=4")); err != nil {
		t.Fatal(err)
	}
	if code, body := rc.read(t); code != 200 || body != "sent hi" {
		t.Fatalf("pipelined send: %d %q", code, body)
	}
	if code, body := rc.read(t); code != 200 || !strings.Contains(body, "i=4") {
		t.Fatalf("pipelined poll: %d %q", code, body)
	}
}

// TestLaneLeavesOddRequestsToNetHTTP: requests the lane could serve but
// for a detail net/http judges (a bad header, no Host or two, a head
// longer than the lane takes, HTTP/1.0, a GET with a body) get net/http's
// own answer, as they would without a lane.
func TestLaneLeavesOddRequestsToNetHTTP(t *testing.T) {
	addr, _ := laneServer(t, nil)
	cases := []struct {
		name, req string
		want      int
	}{
		{"no host", "GET /poll HTTP/1.1\r\n\r\n", 400},
		{"two hosts", "GET /poll HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
		{"control byte in a header", "GET /poll HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n", 400},
		{"head past the lane's buffer", "GET /poll HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 5000) + "\r\n\r\n", 200},
		{"head past MaxHeaderBytes", "GET /poll HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 3000) + "\r\n\r\n", 200},
		{"a body", "GET /poll HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi", 200},
		{"HTTP/1.0", "GET /poll HTTP/1.0\r\nHost: x\r\n\r\n", 200},
		{"bare line feeds", "GET /poll HTTP/1.1\nHost: x\n\n", 200},
		{"a bare line feed ends the head", "GET /poll HTTP/1.1\r\nHost: x\r\n\n", 200},
		// Names that are not tokens: http.ReadRequest keeps them, the
		// server refuses them. Served, "Content-Length :" smuggled what
		// follows it past a proxy that reads it as the length.
		{"a space before a length's colon", "GET /poll HTTP/1.1\r\nHost: x\r\nContent-Length : 27\r\n\r\n" + get("/poll?smuggled"), 400},
		{"a space before an encoding's colon", "GET /poll HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n", 400},
		{"a space in a name", "GET /poll HTTP/1.1\r\nHost: x\r\nX Y: b\r\n\r\n", 400},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rc := dialRaw(t, addr)
			rc.do(t, get("/poll?first"))
			code, body := rc.do(t, c.req)
			if code != c.want {
				t.Fatalf("%d %q, want %d", code, body, c.want)
			}
			if strings.HasSuffix(body, "lane=true") {
				t.Fatalf("the lane served it: %q", body)
			}
		})
	}
}

// TestLaneRecoversPanics: a handler's panic on a lane closes that
// connection only; the server and other lanes go on.
func TestLaneRecoversPanics(t *testing.T) {
	addr, lane := laneServer(t, nil)
	other := dialRaw(t, addr)
	other.do(t, get("/poll?other"))
	rc := dialRaw(t, addr)
	rc.do(t, get("/poll?first"))
	if _, err := io.WriteString(rc.c, get("/poll?panic=1")); err != nil {
		t.Fatal(err)
	}
	_ = rc.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := http.ReadResponse(rc.br, nil); err == nil {
		t.Fatal("an answer came from a handler that panicked")
	}
	// The panicked request's context ends with it, not with the lane.
	select {
	case <-panickedDone:
	case <-time.After(10 * time.Second):
		t.Fatal("the context of the request that panicked did not end")
	}
	if _, body := other.do(t, get("/poll?again")); !strings.HasSuffix(body, "lane=true") {
		t.Fatalf("the other lane: %q", body)
	}
	if lane.Served() != 1 {
		t.Errorf("lane answered %d requests, want 1 (the other's)", lane.Served())
	}
}

// TestLaneDoesNotTakeBackWhatItGaveBack: a poll the lane gives back
// (here for a header byte it leaves to net/http) leaves its connection
// with net/http for good, rather than bouncing at every poll.
func TestLaneDoesNotTakeBackWhatItGaveBack(t *testing.T) {
	addr, lane := laneServer(t, nil)
	rc := dialRaw(t, addr)
	rc.do(t, get("/poll?1"))
	odd := "GET /poll?2 HTTP/1.1\r\nHost: x\r\nX-Name: caf\xc3\xa9\r\n\r\n"
	for i := range 3 {
		if code, body := rc.do(t, odd); code != 200 || strings.HasSuffix(body, "lane=true") {
			t.Fatalf("poll %d with a byte past ASCII: %d %q", i, code, body)
		}
	}
	if lane.Returned() != 1 {
		t.Fatalf("gave back %d times, want once", lane.Returned())
	}
}

// TestLaneClose: Close ends idle lanes and the give-back listener, so
// the server's Serve on it returns and no goroutine is left (goleak).
func TestLaneClose(t *testing.T) {
	addr, lane := laneServer(t, nil)
	rc := dialRaw(t, addr)
	rc.do(t, get("/poll?1"))
	rc.do(t, get("/poll?2"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	lane.Close(ctx)
	_ = rc.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := rc.br.ReadByte(); err != io.EOF {
		t.Fatalf("read after Close: %v, want EOF", err)
	}
	// A poll on a new connection is served by net/http and not taken.
	nc := dialRaw(t, addr)
	nc.do(t, get("/poll?3"))
	if _, body := nc.do(t, get("/poll?4")); !strings.HasSuffix(body, "lane=false") {
		t.Fatalf("after Close: %q", body)
	}
}

// TestLaneRequestContexts: a request the lane serves has a context of
// its own, ended once it is answered, and ended by Close while it is
// being served (through its connection's).
func TestLaneRequestContexts(t *testing.T) {
	started := make(chan context.Context, 4)
	ended := make(chan error, 1)
	addr, lane := laneServer(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			q := r.URL.Query()
			if q.Get("ctx") == "" || !httpx.InLane(r) {
				h.ServeHTTP(w, r)
				return
			}
			started <- r.Context()
			if q.Get("ctx") == "wait" {
				select {
				case <-r.Context().Done():
					ended <- r.Context().Err()
				case <-time.After(10 * time.Second):
					ended <- nil
				}
			}
			w.Header().Set("Content-Length", "2")
			_, _ = io.WriteString(w, "ok")
		})
	})
	rc := dialRaw(t, addr)
	rc.do(t, get("/poll?1")) // taken by the lane
	if _, body := rc.do(t, get("/poll?ctx=answer")); body != "ok" {
		t.Fatalf("a request on the lane: %q", body)
	}
	first := <-started
	if _, body := rc.do(t, get("/poll?2")); !strings.HasSuffix(body, "lane=true") {
		t.Fatalf("the next request: %q", body)
	}
	if first.Err() == nil {
		t.Fatal("an answered request's context has not ended")
	}
	if _, err := io.WriteString(rc.c, get("/poll?ctx=wait")); err != nil {
		t.Fatal(err)
	}
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	closed := make(chan struct{})
	go func() { lane.Close(ctx); close(closed) }()
	defer func() { <-closed }()
	if err := <-ended; err != context.Canceled {
		t.Fatalf("the context of a request served while the lane closed: %v, want %v", err, context.Canceled)
	}
	if _, body := rc.read(t); body != "ok" {
		t.Fatalf("the answer of the request served while the lane closed: %q", body)
	}
}

// TestLaneRoundTripsStayOneLayer: a connection that goes back to
// net/http and is taken again, round after round (a poll, a send, a
// poll...), keeps at most one layer over the socket, and every answer
// comes in order.
func TestLaneRoundTripsStayOneLayer(t *testing.T) {
	addr, lane := laneServer(t, nil)
	rc := dialRaw(t, addr)
	for i := range 50 {
		if _, body := rc.do(t, get(fmt.Sprintf("/poll?r=%d", i))); !strings.Contains(body, fmt.Sprintf("r=%d ", i)) {
			t.Fatalf("round %d poll: %q", i, body)
		}
		// The send is pipelined with the next poll, so that bytes wait in
		// the buffers at each hand-over.
		if _, err := io.WriteString(rc.c, "POST /send HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx"+get(fmt.Sprintf("/poll?s=%d", i))); err != nil {
			t.Fatal(err)
		}
		if _, body := rc.read(t); body != "sent x" {
			t.Fatalf("round %d send: %q", i, body)
		}
		if _, body := rc.read(t); !strings.Contains(body, fmt.Sprintf("s=%d ", i)) {
			t.Fatalf("round %d pipelined poll: %q", i, body)
		}
		if n := lane.Layers(); n > 1 {
			t.Fatalf("round %d: %d layers over the socket", i, n)
		}
	}
	if lane.Returned() < 50 {
		t.Fatalf("gave back %d times, want each send's", lane.Returned())
	}
}

// TestLaneTakesNoRequestWithABody: a poll that carries a body net/http
// cannot drain (past 256 KiB) is not taken over, so nothing in its body
// is ever read as a request.
func TestLaneTakesNoRequestWithABody(t *testing.T) {
	addr, lane := laneServer(t, nil)
	rc := dialRaw(t, addr)
	smuggled := get("/poll?smuggled")
	body := smuggled + strings.Repeat("a", 300<<10)
	if _, err := io.WriteString(rc.c, fmt.Sprintf("GET /poll?a HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", len(body), body)); err != nil {
		t.Fatal(err)
	}
	if code, got := rc.read(t); code != 200 || !strings.Contains(got, "?a") && !strings.Contains(got, " a ") {
		t.Fatalf("first answer: %d %q", code, got)
	}
	_ = rc.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		resp, err := http.ReadResponse(rc.br, nil)
		if err != nil {
			break // net/http closed the connection
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(b), "smuggled") {
			t.Fatalf("the body was served as a request: %q", b)
		}
	}
	if lane.Served() != 0 {
		t.Fatalf("lane served %d requests", lane.Served())
	}
}

// TestLaneServesAnEscapedPath: a poll whose path is escaped (as net/http
// routes it, to the same handler) is the lane's too, not a give-back at
// every poll.
func TestLaneServesAnEscapedPath(t *testing.T) {
	addr, lane := laneServer(t, nil)
	rc := dialRaw(t, addr)
	rc.do(t, get("/poll?1"))
	for i := range 3 {
		if _, body := rc.do(t, get(fmt.Sprintf("/p%%6Fll?e=%d", i))); !strings.HasSuffix(body, "lane=true") {
			t.Fatalf("escaped poll %d: %q", i, body)
		}
	}
	if lane.Returned() != 0 {
		t.Fatalf("gave back %d times", lane.Returned())
	}
}

// A lane answer's Date line is the time it is written, to the second,
// whichever second the one before named.
func TestLaneDate(t *testing.T) {
	base := time.Date(2026, 12, 6, 17, 59, 59, 0, time.FixedZone("X", 3600))
	for _, at := range []time.Time{
		base, base.Add(900 * time.Millisecond), base.Add(time.Second),
		base.Add(1100 * time.Millisecond), base, base.Add(time.Hour),
	} {
		got := string(httpx.AppendDate([]byte("x"), at))
		want := "xDate: " + at.UTC().Format(http.TimeFormat) + "\r\n"
		if got != want {
			t.Fatalf("at %v: %q, want %q", at, got, want)
		}
	}
}

// A header one lane answer carried is not on the next: the lane empties
// the connection's header map between requests.
func TestLaneHeadersPerAnswer(t *testing.T) {
	addr, lane := laneServer(t, nil)
	rc := dialRaw(t, addr)
	for i, c := range []struct{ query, mark string }{
		{"?i=1", ""}, {"?i=2&mark=a", "a"}, {"?i=3", ""}, {"?i=4&mark=b", "b"}, {"?i=5", ""},
	} {
		if _, err := io.WriteString(rc.c, get("/poll"+c.query)); err != nil {
			t.Fatal(err)
		}
		_ = rc.c.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(rc.br, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if got := resp.Header.Get("X-Mark"); got != c.mark {
			t.Fatalf("answer %d: X-Mark %q, want %q", i+1, got, c.mark)
		}
		if onLane := strings.HasSuffix(string(body), "lane=true"); onLane != (i > 0) {
			t.Fatalf("answer %d: %q, on the lane from the second", i+1, body)
		}
		if i > 0 && resp.Header.Get("Date") == "" {
			t.Fatalf("answer %d on the lane has no Date", i+1)
		}
	}
	if lane.Served() != 4 {
		t.Fatalf("the lane served %d requests, want 4", lane.Served())
	}
}

// Adoptable allows a plain HTTP/1.1 request without a body (a GET, a
// POST with none), on a lane that is attached and open, and nothing else.
func TestLaneAdoptable(t *testing.T) {
	lane := httpx.NewLane("/poll")
	get11 := func() *http.Request { return httptest.NewRequest(http.MethodGet, "/poll", nil) }
	if lane.Adoptable(get11()) || lane.Open() {
		t.Fatal("a lane not attached adopts")
	}
	httpx.ServeLaneTest(t, lane, &http.Server{Handler: http.NotFoundHandler(), ReadHeaderTimeout: 5 * time.Second})
	if !lane.Adoptable(get11()) || !lane.Open() {
		t.Fatal("an attached lane does not adopt a plain GET")
	}
	if !lane.Adoptable(httptest.NewRequest(http.MethodPost, "/ticket", nil)) {
		t.Fatal("an attached lane does not adopt a POST without a body")
	}
	for name, r := range map[string]*http.Request{
		"HEAD":     httptest.NewRequest(http.MethodHead, "/poll", nil),
		"POST":     httptest.NewRequest(http.MethodPost, "/poll", strings.NewReader("x")),
		"HTTP/1.0": func() *http.Request { r := get11(); r.Proto, r.ProtoMinor = "HTTP/1.0", 0; return r }(),
		"close":    func() *http.Request { r := get11(); r.Close = true; return r }(),
		"TLS":      httptest.NewRequest(http.MethodGet, "https://x/poll", nil),
	} {
		if lane.Adoptable(r) {
			t.Errorf("%s: adoptable", name)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	lane.Close(ctx)
	if lane.Adoptable(get11()) || lane.Open() {
		t.Fatal("a closed lane adopts")
	}
}
