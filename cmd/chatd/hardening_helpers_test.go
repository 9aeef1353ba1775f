//go:build linux

package main

// Helpers for the attack tests in hardening_test.go: the real Main in this
// process, raw connections and their answers, the server's descriptors and
// heap, and the canary user who chats throughout.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/chatd/chatd/internal/syncbuf"
)

const (
	waitLimit  = 20 * time.Second // bound on any condition a test waits for
	answerWait = 20 * time.Second // bound on reading one answer
)

// ---- the server in this process ----

// server is one Main running in the test's process.
type server struct {
	m    *Main
	base string // http://127.0.0.1:port
	host string // 127.0.0.1:port
	port int
	logs *syncbuf.Buffer
}

// startServer runs Main on 127.0.0.1 with a JWT secret and args on top of
// the flag defaults. It stops when the test ends; then no goroutine may be
// left over.
func startServer(t *testing.T, args ...string) *server {
	t.Helper()
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) }) // runs last
	m := NewMain()
	logs := &syncbuf.Buffer{}
	m.Stdout, m.Stderr = logs, logs
	all := append([]string{"--addr", "127.0.0.1:0", "--data", t.TempDir(), "--jwt-secret", e2eSecret,
		"--log-level", "warn"}, args...)
	if err := m.ParseFlags(all, func(string) string { return "" }); err != nil {
		t.Fatal(err)
	}
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})
	port := m.Addr.(*net.TCPAddr).Port
	host := m.Addr.String()
	return &server{m: m, base: "http://" + host, host: host, port: port, logs: logs}
}

// dialFrom opens a TCP connection to s from the loopback address ip; the
// test closes it at the end if nothing else did.
func (s *server) dialFrom(t *testing.T, ip string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: answerWait}
	c, err := d.Dial("tcp", s.host)
	if err != nil {
		t.Fatalf("dial from %s: %v", ip, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// get asks path on a fresh connection from ip that closes after the
// answer.
func (s *server) get(t *testing.T, ip, path string) answer {
	t.Helper()
	c := s.dialFrom(t, ip)
	defer c.Close()
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: chatd\r\nConnection: close\r\n\r\n", path); err != nil {
		t.Fatalf("GET %s from %s: %v", path, ip, err)
	}
	a := readAnswer(c, bufio.NewReader(c))
	if a.err != nil {
		t.Fatalf("GET %s from %s: %v", path, ip, a.err)
	}
	return a
}

// metric reads one plain series from /metrics, asked from ip.
func (s *server) metric(t *testing.T, ip, series string) float64 {
	t.Helper()
	a := s.get(t, ip, "/metrics")
	for _, line := range strings.Split(string(a.body), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	t.Fatalf("no series %s in /metrics", series)
	return 0
}

// answer is what a raw connection got back.
type answer struct {
	status int
	header http.Header
	body   []byte
	code   string // the error envelope's code, if any
	close  bool   // Connection: close (http.ReadResponse takes it out of header)
	err    error  // reading failed: no answer at all
}

// readAnswer reads one HTTP answer from c.
func readAnswer(c net.Conn, br *bufio.Reader) answer {
	_ = c.SetReadDeadline(time.Now().Add(answerWait))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return answer{err: err}
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	a := answer{status: resp.StatusCode, header: resp.Header, body: body, close: resp.Close, err: err}
	var env struct {
		Code string `json:"code"`
	}
	if json.Unmarshal(body, &env) == nil {
		a.code = env.Code
	}
	return a
}

// closedByServer reports whether the server closes c: a read gets EOF (or
// a reset) before the test's bound, and nothing more arrives.
func closedByServer(c net.Conn, br *bufio.Reader) error {
	_ = c.SetReadDeadline(time.Now().Add(answerWait))
	n, err := br.Read(make([]byte, 1))
	switch {
	case n > 0:
		return errors.New("more bytes after the answer")
	case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET):
		return nil
	}
	return fmt.Errorf("not closed by the server: %v", err)
}

// waitFor polls cond until it holds, failing after waitLimit. It is for
// server-side state that no event announces.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ---- descriptors and heap ----

// openFDs counts this process's open descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// serverSockets counts this process's descriptors that are TCP sockets on
// the server's side of port (its listener and the connections it
// accepted), leaving out the test's own client sockets.
func serverSockets(t *testing.T, port int) int {
	t.Helper()
	return len(serverSocketList(t, port))
}

// serverSocketList describes the sockets serverSockets counts, one
// "local remote state" line each (addresses and state in /proc's hex),
// for a failure to show. A socket counts when its local address is the
// listener's, 127.0.0.1:port (IPv4 or IPv4-mapped): a client socket of the
// test bound to another loopback address may have the same port number.
func serverSocketList(t *testing.T, port int) []string {
	t.Helper()
	v4 := fmt.Sprintf("0100007F:%04X", port)
	v6 := fmt.Sprintf("0000000000000000FFFF00000100007F:%04X", port)
	sockets := map[string]string{} // inode → description
	for _, f := range []string{"/proc/self/net/tcp", "/proc/self/net/tcp6"} {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n")[1:] {
			fields := strings.Fields(line)
			if len(fields) < 10 {
				continue
			}
			if local := fields[1]; local == v4 || local == v6 {
				sockets[fields[9]] = fields[1] + " " + fields[2] + " " + fields[3]
			}
		}
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		link, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err != nil {
			continue
		}
		if ino, ok := strings.CutPrefix(link, "socket:["); ok {
			if d, ok := sockets[strings.TrimSuffix(ino, "]")]; ok {
				out = append(out, d)
			}
		}
	}
	return out
}

// waitSockets waits until the server holds at most max sockets on its
// port, and fails listing them if it does not within waitLimit.
func waitSockets(t *testing.T, s *server, max int, what string) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		list := serverSocketList(t, s.port)
		if len(list) <= max {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s: %d sockets, want at most %d:\n%s", what, len(list), max, strings.Join(list, "\n"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// heapSampler records the largest live heap seen while it runs.
type heapSampler struct {
	base uint64
	max  atomic.Uint64
	stop chan struct{}
	done chan struct{}
}

// liveHeap is the heap in use after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// sampleHeap measures the live heap now, then every 20 ms until Stop.
func sampleHeap() *heapSampler {
	h := &heapSampler{base: liveHeap(), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(h.done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			if v := liveHeap(); v > h.max.Load() {
				h.max.Store(v)
			}
			select {
			case <-h.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return h
}

// Stop ends the sampling and returns the largest growth over the base.
func (h *heapSampler) Stop() uint64 {
	close(h.stop)
	<-h.done
	if m := h.max.Load(); m > h.base {
		return m - h.base
	}
	return 0
}

// ---- the canary ----

// canary is a user chatting over one WebSocket from 127.0.0.1: it sends a
// message every 100 ms (the send limit is 10/s) and checks that each comes
// back, in order, on the same connection.
type canary struct {
	ws   *websocket.Conn
	user string
	sent atomic.Int64 // messages written
	got  atomic.Int64 // own messages received back, in order
	mu   sync.Mutex
	err  error // Guarded by mu: the first thing that went wrong.
	stop chan struct{}
	wg   sync.WaitGroup
}

const canaryRoom = "canary"

// startCanary connects, joins the canary room and starts chatting.
func startCanary(t *testing.T, s *server) *canary {
	t.Helper()
	c := &canary{user: "canary", stop: make(chan struct{})}
	d := websocket.Dialer{HandshakeTimeout: answerWait}
	ws, _, err := d.Dial("ws://"+s.host+"/v1/ws",
		http.Header{"Authorization": {"Bearer " + token(t, e2eSecret, c.user, "Canary")}})
	if err != nil {
		t.Fatalf("canary dial: %v", err)
	}
	c.ws = ws
	if err := ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"join","room":"`+canaryRoom+`","id":"j"}`)); err != nil {
		t.Fatal(err)
	}
	joined := make(chan struct{})
	c.wg.Add(2)
	go c.read(joined)
	go func() {
		defer c.wg.Done()
		select {
		case <-joined:
			c.write()
		case <-c.stop:
		}
	}()
	t.Cleanup(func() { c.close() })
	return c
}

// fail records the first failure.
func (c *canary) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = err
	}
}

func (c *canary) failure() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// read checks every frame until the connection closes.
func (c *canary) read(joined chan struct{}) {
	defer c.wg.Done()
	for {
		_, data, err := c.ws.ReadMessage()
		if err != nil {
			select {
			case <-c.stop:
			default:
				c.fail(fmt.Errorf("canary connection lost: %w", err))
			}
			return
		}
		var list []envelope
		if len(data) > 0 && data[0] == '[' {
			err = json.Unmarshal(data, &list)
		} else {
			list = make([]envelope, 1)
			err = json.Unmarshal(data, &list[0])
		}
		if err != nil {
			c.fail(fmt.Errorf("canary got %q: %v", data, err))
			continue
		}
		for _, e := range list {
			switch {
			case e.Type == "joined":
				close(joined)
			case e.Type == "error":
				c.fail(fmt.Errorf("canary got an error: %s %s", e.Code, e.Message))
			case e.Type == "message" && e.From == c.user:
				if want := fmt.Sprintf("c%d", c.got.Load()+1); e.ID != want {
					c.fail(fmt.Errorf("canary got message %s, want %s", e.ID, want))
				}
				c.got.Add(1)
			}
		}
	}
}

// write sends a message every 100 ms until stop.
func (c *canary) write() {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-tick.C:
		}
		n := c.sent.Load() + 1
		frame := fmt.Sprintf(`{"type":"send","room":%q,"id":"c%d","text":"ping %d"}`, canaryRoom, n, n)
		if err := c.ws.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
			c.fail(fmt.Errorf("canary send %d: %w", n, err))
			return
		}
		c.sent.Store(n)
	}
}

// advance waits until k more of the canary's messages have come back.
func (c *canary) advance(t *testing.T, k int64, when string) {
	t.Helper()
	from := c.got.Load()
	waitFor(t, fmt.Sprintf("%d more canary messages %s", k, when), func() bool {
		return c.got.Load() >= from+k || c.failure() != nil
	})
	if err := c.failure(); err != nil {
		t.Fatalf("%s: %v", when, err)
	}
}

// finish stops sending, waits for every sent message to come back, and
// checks that nothing went wrong.
func (c *canary) finish(t *testing.T) {
	t.Helper()
	c.advance(t, 1, "at the end")
	close(c.stop)
	waitFor(t, "every canary message back", func() bool {
		return c.got.Load() >= c.sent.Load() || c.failure() != nil
	})
	if err := c.failure(); err != nil {
		t.Fatal(err)
	}
	t.Logf("canary: %d messages sent, %d came back", c.sent.Load(), c.got.Load())
}

// close ends the canary's goroutines and its connection.
func (c *canary) close() {
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
	c.ws.Close()
	c.wg.Wait()
}
