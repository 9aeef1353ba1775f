//go:build linux

package main

// Attack tests for the limits every connection meets before any
// credential is checked: slow bodies, huge headers, and too many
// connections from one address or in all. Each runs the real Main in this
// process, so it can count the server's descriptors (/proc/self/fd) and
// its heap, while a canary user chats over a WebSocket throughout and must
// keep getting every message back (hardening_helpers_test.go).

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestAttackSlowBody: 200 connections from one address announce a
// 1000-byte body and then send nothing, or trickle it a byte every 100 ms.
// Without credentials the answer is 401 at once, with Connection: close;
// with them the handler waits for the body and answers 408 timeout. Either
// way the server closes each connection by the body deadline, and the
// descriptors come back.
func TestAttackSlowBody(t *testing.T) {
	s := startServer(t, "--body-timeout", "2s")
	c := startCanary(t, s)
	c.advance(t, 2, "before the attack")
	tok := token(t, e2eSecret, "mallory", "Mallory")
	baseFDs := openFDs(t)

	const n = 200
	conns := make([]net.Conn, n)
	for i := range conns {
		conns[i] = s.dialFrom(t, "127.0.0.3")
	}
	stop := make(chan struct{})
	results := make([]answer, n)
	closed := make([]error, n)
	var wg sync.WaitGroup
	for i, conn := range conns {
		authed, trickle := i%2 == 1, i%4 >= 2
		hdr := "POST /v1/send HTTP/1.1\r\nHost: chatd\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n"
		if authed {
			hdr += "Authorization: Bearer " + tok + "\r\n"
		}
		if _, err := io.WriteString(conn, hdr+"\r\n"); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if trickle {
				wg.Add(1)
				go trickleBody(&wg, conn, stop)
			}
			br := bufio.NewReader(conn)
			results[i] = readAnswer(conn, br)
			closed[i] = closedByServer(conn, br)
		}()
	}
	waitFor(t, "the attack's connections to be open on the server", func() bool {
		return serverSockets(t, s.port) >= n
	})
	c.advance(t, 3, "during the attack")
	if a := s.get(t, "127.0.0.2", "/healthz"); a.status != http.StatusOK {
		t.Errorf("/healthz during the attack: %d", a.status)
	}
	wg.Wait()
	close(stop)

	for i, a := range results {
		want, code := http.StatusUnauthorized, "unauthorized"
		if i%2 == 1 {
			want, code = http.StatusRequestTimeout, "timeout"
		}
		if a.err != nil || a.status != want || a.code != code || !a.close {
			t.Fatalf("connection %d: got %d %q (close %v, err %v), want %d %s with Connection: close",
				i, a.status, a.code, a.close, a.err, want, code)
		}
		if closed[i] != nil {
			t.Fatalf("connection %d after its %d: %v", i, a.status, closed[i])
		}
	}
	for _, conn := range conns {
		conn.Close()
	}
	waitFor(t, fmt.Sprintf("descriptors back to %d", baseFDs), func() bool { return openFDs(t) <= baseFDs })
	c.advance(t, 3, "after the attack")
	c.finish(t)
}

// trickleBody writes one byte of a body every 100 ms until stop or a
// write fails.
func trickleBody(wg *sync.WaitGroup, c net.Conn, stop chan struct{}) {
	defer wg.Done()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		if _, err := c.Write([]byte{' '}); err != nil {
			return
		}
	}
}

// TestAttackHugeHeaders: 200 connections from one address send header
// blocks that are too big or never end: 50 finished blocks of 100 KB, 100
// unfinished ones of 100 KB in a single line (the costliest shape: the
// line is assembled in a growing buffer), and 50 of 30 KB in 1 KB lines
// that never end. Past 32 KiB, plus Go's 4 KiB of bufio slop, the answer
// is 431 at once, finished or not; the 30 KB ones are cut, unanswered, by
// the header timeout. Finished blocks of 32 KiB and 36 KiB are served.
//
// The heap bound: a connection reading a header holds at most the 36 KiB
// read limit, twice over while a single line grows in its buffer, plus
// its 4 KiB read and write buffers and the connection's own structures:
// about 84 KiB. 200 connections at once make 16.4 MiB: the bound is
// 16 MiB. With Go's default 1 MB limit the unfinished 100 KB lines are
// all held until the timeout, and the heap grows past it.
func TestAttackHugeHeaders(t *testing.T) {
	s := startServer(t, "--header-timeout", "2s")
	c := startCanary(t, s)
	c.advance(t, 2, "before the attack")
	baseFDs := openFDs(t)

	pad := func(size int) string {
		var b strings.Builder
		b.WriteString("GET /healthz HTTP/1.1\r\nHost: chatd\r\n")
		for i := 0; b.Len() < size; i++ {
			fmt.Fprintf(&b, "X-Pad-%04d: %s\r\n", i, strings.Repeat("a", 1000))
		}
		return b.String()
	}
	huge, held := pad(100_000), pad(30_000)
	line := "GET /healthz HTTP/1.1\r\nHost: chatd\r\nX-Huge: " + strings.Repeat("a", 100_000)

	// The edges: a block of 32 KiB is served, and so is one of 36 KiB (Go's
	// slop); one byte more is refused.
	for _, tc := range []struct {
		size int
		want int
	}{{32 << 10, http.StatusOK}, {36 << 10, http.StatusOK}, {36<<10 + 1, http.StatusRequestHeaderFieldsTooLarge}} {
		if a := s.sendHeader(t, "127.0.0.2", tc.size); a.err != nil || a.status != tc.want {
			t.Fatalf("a finished header block of %d bytes: %d, %v; want %d", tc.size, a.status, a.err, tc.want)
		}
	}

	const finished, unfinished, slow = 50, 100, 50
	heap := sampleHeap()
	var wg sync.WaitGroup
	results := make([]answer, finished+unfinished+slow)
	closed := make([]error, len(results))
	conns := make([]net.Conn, len(results))
	for i := range results {
		conn := s.dialFrom(t, "127.0.0.3")
		conns[i] = conn
		block := huge + "\r\n"
		switch {
		case i >= finished+unfinished:
			block = held
		case i >= finished:
			block = line
		}
		wg.Add(2)
		go func() {
			defer wg.Done()
			_, _ = io.WriteString(conn, block) // fails once the server has answered and closed
		}()
		go func() {
			defer wg.Done()
			br := bufio.NewReader(conn)
			results[i] = readAnswer(conn, br)
			if results[i].err == nil {
				closed[i] = closedByServer(conn, br)
			}
		}()
	}
	waitFor(t, "the 30 KB headers to be held", func() bool { return serverSockets(t, s.port) >= slow })
	c.advance(t, 3, "during the attack")
	wg.Wait()
	growth := heap.Stop()
	for _, conn := range conns {
		conn.Close()
	}

	for i, a := range results {
		if i < finished+unfinished {
			if a.err != nil || a.status != http.StatusRequestHeaderFieldsTooLarge || closed[i] != nil {
				t.Fatalf("connection %d, 100 KB header: %d, %v, %v; want 431, then closed", i, a.status, a.err, closed[i])
			}
			continue
		}
		if a.err == nil || !(errors.Is(a.err, io.ErrUnexpectedEOF) || errors.Is(a.err, io.EOF) ||
			errors.Is(a.err, syscall.ECONNRESET)) {
			t.Fatalf("connection %d, 30 KB header never finished: got %d, %v; want closed without an answer",
				i, a.status, a.err)
		}
	}
	const bound = 16 << 20
	t.Logf("heap growth during the attack: %.1f MiB (bound %d MiB)", float64(growth)/(1<<20), bound>>20)
	if growth > bound {
		t.Errorf("heap grew by %d bytes during the attack, over the %d bound", growth, bound)
	}
	waitFor(t, fmt.Sprintf("descriptors back to %d", baseFDs), func() bool { return openFDs(t) <= baseFDs })
	c.advance(t, 3, "after the attack")
	c.finish(t)
}

// TestAttackConnsPerIP: with the per-address cap at 20, one address holds
// 10 WebSockets and 10 kept-alive HTTP connections; its next connections,
// plain or WebSocket, get 429 too_many_connections with Retry-After and
// Connection: close, while another address is served. The server holds
// no descriptor for a refused connection once answered, and closing the
// WebSockets gives back exactly their 10 places.
func TestAttackConnsPerIP(t *testing.T) {
	s := startServer(t, "--max-conns-per-ip", "20")
	c := startCanary(t, s)
	c.advance(t, 2, "before the attack")
	const attacker = "127.0.0.3"
	wsDialer := websocket.Dialer{HandshakeTimeout: answerWait, NetDial: func(network, addr string) (net.Conn, error) {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(attacker)}}
		return d.Dial(network, addr)
	}}
	auth := http.Header{"Authorization": {"Bearer " + token(t, e2eSecret, "mallory", "Mallory")}}
	var sockets []*websocket.Conn
	for range 10 {
		ws, _, err := wsDialer.Dial("ws://"+s.host+"/v1/ws", auth)
		if err != nil {
			t.Fatalf("WebSocket within the cap: %v", err)
		}
		sockets = append(sockets, ws)
		t.Cleanup(func() { ws.Close() })
	}
	keepAlive(t, s, attacker, 10)

	refused := func(what string) {
		t.Helper()
		conn := s.dialFrom(t, attacker)
		br := bufio.NewReader(conn)
		if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: chatd\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		a := readAnswer(conn, br)
		if a.err != nil || a.status != http.StatusTooManyRequests || a.code != "too_many_connections" ||
			a.header.Get("Retry-After") != "1" || !a.close {
			t.Fatalf("%s: got %d %q Retry-After %q close %v (%v); want 429 too_many_connections, Retry-After: 1, Connection: close",
				what, a.status, a.code, a.header.Get("Retry-After"), a.close, a.err)
		}
		if err := closedByServer(conn, br); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		conn.Close()
	}
	for i := range 50 {
		refused(fmt.Sprintf("connection %d over the cap", 21+i))
	}
	_, resp, err := wsDialer.Dial("ws://"+s.host+"/v1/ws", auth)
	if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("a WebSocket over the cap: %v, %v; want 429", resp, err)
	}
	if a := s.get(t, "127.0.0.2", "/healthz"); a.status != http.StatusOK {
		t.Errorf("/healthz from another address: %d", a.status)
	}
	c.advance(t, 3, "during the attack")
	// Listener, canary, and the attacker's 20: refused ones hold nothing.
	waitSockets(t, s, 1+1+20, "only admitted connections on the server")
	if v := s.metric(t, "127.0.0.2", `chat_http_conns_refused_total{reason="per_ip"}`); v < 51 {
		t.Errorf("per_ip refusals counted: %v, want at least 51", v)
	}

	for _, ws := range sockets {
		ws.Close()
	}
	waitFor(t, "the WebSockets' places back", func() bool { return s.m.ln.Open() == 1+10 })
	keepAlive(t, s, attacker, 10)
	refused("connection 21 after the WebSockets closed")
	c.advance(t, 3, "after the attack")
	c.finish(t)
}

// sendHeader sends a GET whose request line and headers, final CRLF
// included, are exactly size bytes, and reads the answer.
func (s *server) sendHeader(t *testing.T, ip string, size int) answer {
	t.Helper()
	head := "GET /healthz HTTP/1.1\r\nHost: chatd\r\nConnection: close\r\nX-Pad: "
	pad := size - len(head) - len("\r\n\r\n")
	conn := s.dialFrom(t, ip)
	defer conn.Close()
	go func() { _, _ = io.WriteString(conn, head+strings.Repeat("a", pad)+"\r\n\r\n") }()
	return readAnswer(conn, bufio.NewReader(conn))
}

// keepAlive opens n connections from ip that each get one answer and stay
// open; they close when the test ends.
func keepAlive(t *testing.T, s *server, ip string, n int) []net.Conn {
	t.Helper()
	var conns []net.Conn
	for i := range n {
		conn := s.dialFrom(t, ip)
		if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: chatd\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		if a := readAnswer(conn, bufio.NewReader(conn)); a.err != nil || a.status != http.StatusOK {
			t.Fatalf("kept-alive connection %d from %s: %d, %v; want 200", i, ip, a.status, a.err)
		}
		conns = append(conns, conn)
	}
	return conns
}

// TestAttackNodeCap: with the node cap at 60, four addresses open 80
// kept-alive connections. Beside the canary's connection, 59 are served
// and 21 get 503 unavailable with Retry-After and Connection: close; the
// server's sockets stay at the cap plus its listener; the canary's open
// connection keeps working; once the attackers leave, new connections are
// served again.
func TestAttackNodeCap(t *testing.T) {
	const limit = 60
	s := startServer(t, "--max-conns", strconv.Itoa(limit))
	c := startCanary(t, s)
	c.advance(t, 2, "before the attack")

	var held []net.Conn
	served, refused := 0, 0
	for i := range 80 {
		conn := s.dialFrom(t, fmt.Sprintf("127.0.0.%d", 2+i%4))
		if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: chatd\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(conn)
		a := readAnswer(conn, br)
		switch {
		case a.err == nil && a.status == http.StatusOK:
			served++
			held = append(held, conn)
		case a.err == nil && a.status == http.StatusServiceUnavailable && a.code == "unavailable" &&
			a.header.Get("Retry-After") == "5" && a.close:
			refused++
			if err := closedByServer(conn, br); err != nil {
				t.Fatalf("connection %d, refused: %v", i, err)
			}
			conn.Close()
		default:
			t.Fatalf("connection %d: got %d %q Retry-After %q close %v (%v); want 200, or 503 unavailable with Retry-After: 5 and Connection: close",
				i, a.status, a.code, a.header.Get("Retry-After"), a.close, a.err)
		}
	}
	if served != limit-1 || refused != 80-(limit-1) {
		t.Fatalf("served %d and refused %d; want %d and %d", served, refused, limit-1, 80-(limit-1))
	}
	waitSockets(t, s, limit+1, "no more than the cap and the listener on the server")
	c.advance(t, 3, "at the cap")

	for _, conn := range held {
		conn.Close()
	}
	waitFor(t, "the attackers' places back", func() bool { return s.m.ln.Open() == 1 })
	if a := s.get(t, "127.0.0.6", "/healthz"); a.status != http.StatusOK {
		t.Errorf("/healthz after the attack: %d", a.status)
	}
	if v := s.metric(t, "127.0.0.6", `chat_http_conns_refused_total{reason="node"}`); v != 21 {
		t.Errorf("node refusals counted: %v, want 21", v)
	}
	c.advance(t, 3, "after the attack")
	c.finish(t)
}

// TestLimitsSpareLegitRequests: the limits leave well-behaved clients
// alone. Requests whose body arrives in full keep their connection alive;
// an SSE stream outlives the body deadline and keeps delivering; a body
// sent to a route that refuses it before reading gets its answer, and the
// connection closes. A body on a streaming route is refused.
func TestLimitsSpareLegitRequests(t *testing.T) {
	const bodyTimeout = 500 * time.Millisecond
	s := startServer(t, "--body-timeout", bodyTimeout.String())
	c := startCanary(t, s)
	tok := token(t, e2eSecret, "alice", "Alice")

	conn := s.dialFrom(t, "127.0.0.2")
	br := bufio.NewReader(conn)
	for i := range 3 {
		body := fmt.Sprintf(`{"room":"legit","id":"l%d","text":"hello"}`, i)
		fmt.Fprintf(conn, "POST /v1/send HTTP/1.1\r\nHost: chatd\r\nAuthorization: Bearer %s\r\n"+
			"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", tok, len(body), body)
		if a := readAnswer(conn, br); a.err != nil || a.status != http.StatusOK || a.close {
			t.Fatalf("send %d on a kept-alive connection: %d %s close %v (%v); want 200, kept alive",
				i, a.status, a.body, a.close, a.err)
		}
	}

	// An SSE stream has no body deadline: it still delivers once it has
	// been open for longer than one.
	sse := s.dialFrom(t, "127.0.0.2")
	fmt.Fprintf(sse, "GET /v1/sse?rooms=%s HTTP/1.1\r\nHost: chatd\r\nAuthorization: Bearer %s\r\n\r\n", canaryRoom, tok)
	opened := time.Now()
	sbr := bufio.NewReader(sse)
	resp, err := http.ReadResponse(sbr, nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("SSE: %v, %v", resp, err)
	}
	_ = sse.SetReadDeadline(time.Now().Add(waitLimit))
	late := 0
	for late < 3 {
		line, err := sbr.ReadString('\n')
		if err != nil {
			t.Fatalf("SSE stream ended after %v: %v", time.Since(opened), err)
		}
		if strings.HasPrefix(line, "data:") && strings.Contains(line, `"type":"message"`) &&
			time.Since(opened) > 2*bodyTimeout {
			late++
		}
	}
	sse.Close()

	// Refused before the body is read: the answer comes at once, with
	// Connection: close, and the connection then closes.
	body := `{"room":"legit","id":"x","text":"no credentials"}`
	fmt.Fprintf(conn, "POST /v1/send HTTP/1.1\r\nHost: chatd\r\nContent-Type: application/json\r\n"+
		"Content-Length: %d\r\n\r\n%s", len(body), body)
	if a := readAnswer(conn, br); a.err != nil || a.status != http.StatusUnauthorized || !a.close {
		t.Fatalf("send without credentials: %d close %v (%v); want 401 with Connection: close", a.status, a.close, a.err)
	}
	if err := closedByServer(conn, br); err != nil {
		t.Fatal(err)
	}

	// A streaming route takes no body.
	ws := s.dialFrom(t, "127.0.0.2")
	fmt.Fprintf(ws, "GET /v1/sse?rooms=x HTTP/1.1\r\nHost: chatd\r\nAuthorization: Bearer %s\r\nContent-Length: 10\r\n\r\n", tok)
	if a := readAnswer(ws, bufio.NewReader(ws)); a.err != nil || a.status != http.StatusBadRequest ||
		a.code != "bad_request" || !a.close {
		t.Fatalf("a body on /v1/sse: %d %q close %v (%v); want 400 bad_request with Connection: close",
			a.status, a.code, a.close, a.err)
	}
	c.finish(t)
}

// TestAttackNeverReads: a client that pipelines requests and never reads
// the answers holds its connection only until the write timeout, not for
// as long as it keeps the connection open: once the answers have filled
// the socket's buffers and made no progress for that long, the server
// closes the connection (its goroutine ends: goleak), and the canary
// never notices.
func TestAttackNeverReads(t *testing.T) {
	s := startServer(t, "--write-timeout", "500ms")
	c := startCanary(t, s)
	open := func() float64 { return s.metric(t, "127.0.0.3", "chat_http_conns_open") }
	before := open()
	conn := s.dialFrom(t, "127.0.0.2")
	// 200 answers of the page's script, about 15 MB: more than the
	// buffers of both ends hold. Written on a goroutine of its own: the
	// server stops reading requests once its answers wait.
	reqs := strings.Repeat("GET /chat-client.js HTTP/1.1\r\nHost: chatd\r\n\r\n", 200)
	written := make(chan struct{})
	go func() {
		defer close(written)
		_, _ = io.WriteString(conn, reqs)
	}()
	waitFor(t, "the connection to open", func() bool { return open() == before+1 })
	waitFor(t, "the server to close the connection that never reads", func() bool { return open() == before })
	conn.Close()
	<-written
	c.finish(t)
}

// TestWriteTimeoutSparesStreams: the write timeout bounds the answers
// that are not streams only, and no deadline outlives its answer: long
// polls asked on the connection of an answer that had one (no lane,
// which would have taken the connection over, and no parking, which sets
// its own) are still answered when they are held past it.
func TestWriteTimeoutSparesStreams(t *testing.T) {
	const writeTimeout = 300 * time.Millisecond
	s := startServer(t, "--write-timeout", writeTimeout.String(), "--poll-lane=false", "--poll-park", "0")
	c := startCanary(t, s)
	tok := token(t, e2eSecret, "alice", "Alice")
	conn := s.dialFrom(t, "127.0.0.2")
	br := bufio.NewReader(conn)
	fmt.Fprintf(conn, "GET /v1/me HTTP/1.1\r\nHost: chatd\r\nAuthorization: Bearer %s\r\n\r\n", tok)
	if a := readAnswer(conn, br); a.err != nil || a.status != http.StatusOK || a.close {
		t.Fatalf("GET /v1/me: %d close %v (%v); want 200, kept alive", a.status, a.close, a.err)
	}
	asked := time.Now()
	// The canary's messages answer the polls: poll until one answered
	// well past the deadline /v1/me's answer left has come.
	query := "rooms=" + canaryRoom
	for late := false; !late; {
		fmt.Fprintf(conn, "GET /v1/poll?%s HTTP/1.1\r\nHost: chatd\r\nAuthorization: Bearer %s\r\n\r\n", query, tok)
		a := readAnswer(conn, br)
		if a.err != nil || a.status != http.StatusOK || a.close {
			t.Fatalf("a poll %v after /v1/me on its connection: %d close %v (%v); want 200, kept alive",
				time.Since(asked), a.status, a.close, a.err)
		}
		var got struct{ Cursor string }
		if err := json.Unmarshal(a.body, &got); err != nil || got.Cursor == "" {
			t.Fatalf("poll answer %q: %v", a.body, err)
		}
		query = "rooms=" + canaryRoom + "&cursor=" + url.QueryEscape(got.Cursor)
		late = time.Since(asked) > 3*writeTimeout
	}
	conn.Close()
	c.finish(t)
}

// TestAttackSSEFlood: a client that sends bytes up its event stream,
// where nothing it sends means anything, has the stream ended once it has
// sent 8 KiB, rather than the server reading the flood for as long as the
// stream lasts; the canary never notices.
func TestAttackSSEFlood(t *testing.T) {
	s := startServer(t)
	c := startCanary(t, s)
	tok := token(t, e2eSecret, "mallory", "Mallory")
	conn := s.dialFrom(t, "127.0.0.2")
	br := bufio.NewReader(conn)
	fmt.Fprintf(conn, "GET /v1/sse?rooms=%s HTTP/1.1\r\nHost: chatd\r\nAuthorization: Bearer %s\r\n\r\n", canaryRoom, tok)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("SSE: %v, %v", resp, err)
	}
	// 64 KiB in a goroutine of its own: the server stops reading it.
	written := make(chan struct{})
	go func() {
		defer close(written)
		_, _ = conn.Write(bytes.Repeat([]byte("x"), 64<<10))
	}()
	_ = conn.SetReadDeadline(time.Now().Add(waitLimit))
	if _, err := io.Copy(io.Discard, br); err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("the flooding client's stream: %v, want its end", err)
	}
	conn.Close()
	<-written
	c.finish(t)
}

// TestAttackStalledUpload: an upload whose form stops before its file has
// begun is held to the body deadline, as any body is, and answered 408;
// the upload's own, longer deadline starts only with the file, once the
// room, the rate and the quota have let it through.
func TestAttackStalledUpload(t *testing.T) {
	s := startServer(t, "--body-timeout", "500ms")
	c := startCanary(t, s)
	tok := token(t, e2eSecret, "mallory", "Mallory")
	conn := s.dialFrom(t, "127.0.0.2")
	br := bufio.NewReader(conn)
	const boundary = "b0undary"
	fmt.Fprintf(conn, "POST /v1/files HTTP/1.1\r\nHost: chatd\r\nAuthorization: Bearer %s\r\n"+
		"Content-Type: multipart/form-data; boundary=%s\r\nContent-Length: 100000\r\n\r\n"+
		"--%s\r\nContent-Disposition: form-data; name=\"room\"\r\n\r\nlob", tok, boundary, boundary)
	if a := readAnswer(conn, br); a.err != nil || a.status != http.StatusRequestTimeout {
		t.Fatalf("an upload stalled in its form: %d %s (%v); want 408", a.status, a.body, a.err)
	}
	c.finish(t)
}
