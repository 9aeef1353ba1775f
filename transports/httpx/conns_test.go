package httpx

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chatd/chatd/internal/syncbuf"
)

const connWait = 15 * time.Second // bound on anything these tests wait for

// counter reads a counter from reg: name, with reason=reason if given.
func counter(t *testing.T, reg *prometheus.Registry, name, reason string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if reason == "" || (len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == reason) {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no counter %s{reason=%q}", name, reason)
	return 0
}

// acceptAll runs Accept on l until it fails, handing out what it admits.
func acceptAll(t *testing.T, l *Listener) <-chan net.Conn {
	t.Helper()
	out := make(chan net.Conn, 16)
	go func() {
		defer close(out)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			out <- c
		}
	}()
	return out
}

// admitted waits for the next connection l hands out.
func admitted(t *testing.T, conns <-chan net.Conn) net.Conn {
	t.Helper()
	select {
	case c := <-conns:
		t.Cleanup(func() { c.Close() })
		return c
	case <-time.After(connWait):
		t.Fatal("no connection admitted")
		return nil
	}
}

func dial(t *testing.T, l net.Listener) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", l.Addr().String(), connWait)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// refusal reads a refusal from c: its status, Retry-After and the
// envelope's code; err if the connection closed without one.
func refusal(c net.Conn) (status int, retry, code string, err error) {
	_ = c.SetReadDeadline(time.Now().Add(connWait))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, "", "", err
	}
	defer resp.Body.Close()
	var env struct {
		Code string `json:"code"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		return 0, "", "", err
	}
	if !resp.Close {
		return 0, "", "", errors.New("refusal without Connection: close")
	}
	return resp.StatusCode, resp.Header.Get("Retry-After"), env.Code, nil
}

// TestListenerCountsEachConnOnce: connections over the per-address cap
// are refused with 429 too_many_connections; a connection's place comes
// back on its first Close only.
func TestListenerCountsEachConnOnce(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	l := NewListener(ln, ConnLimits{PerIP: 2, Metrics: reg})
	defer l.Close()
	conns := acceptAll(t, l)

	dial(t, l)
	a := admitted(t, conns)
	dial(t, l)
	admitted(t, conns)
	status, retry, code, err := refusal(dial(t, l))
	if err != nil || status != http.StatusTooManyRequests || retry != "1" || code != "too_many_connections" {
		t.Fatalf("third connection: %d Retry-After %q %q (%v); want 429 too_many_connections, Retry-After: 1",
			status, retry, code, err)
	}
	if got := counter(t, reg, "chat_http_conns_refused_total", reasonPerIP); got != 1 {
		t.Errorf("per_ip refusals: %v, want 1", got)
	}
	a.Close()
	a.Close()
	if n := l.Open(); n != 1 {
		t.Fatalf("after closing one connection twice, %d open; want 1", n)
	}
	dial(t, l)
	admitted(t, conns)
	if _, _, _, err := refusal(dial(t, l)); err != nil {
		t.Fatalf("the place came back twice: %v", err)
	}
}

// TestListenerBoundsRefusals: with one refusal in flight allowed, a
// refusal whose client neither reads nor leaves holds the slot, and the
// next refused connection is closed without an answer. Close cuts the
// refusals in flight.
func TestListenerBoundsRefusals(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	l := NewListener(ln, ConnLimits{Total: 1, Refusing: 1, Metrics: reg})
	l.linger = connWait // a refusal lasts until its client leaves
	conns := acceptAll(t, l)
	dial(t, l)
	admitted(t, conns)

	lingering := dial(t, l) // refused; holds the only slot
	waitUntil(t, "the refusal in flight", func() bool { return len(l.slots) == 1 })
	if _, _, _, err := refusal(dial(t, l)); err == nil {
		t.Fatal("a refusal beyond the bound was answered")
	}
	if got := counter(t, reg, "chat_http_conns_refused_unanswered_total", ""); got != 1 {
		t.Errorf("unanswered refusals: %v, want 1", got)
	}
	if status, _, code, err := refusal(lingering); err != nil || status != http.StatusServiceUnavailable || code != "unavailable" {
		t.Fatalf("the refusal in flight: %d %q (%v); want 503 unavailable", status, code, err)
	}
	lingering.Close()
	waitUntil(t, "the slot back", func() bool { return len(l.slots) == 0 })

	held := dial(t, l)
	waitUntil(t, "a new refusal in flight", func() bool { return len(l.slots) == 1 })
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if len(l.slots) != 0 {
		t.Fatal("Close returned with a refusal in flight")
	}
	_ = held.SetReadDeadline(time.Now().Add(connWait))
	if _, err := io.ReadAll(held); err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("the refused connection after Close: %v", err)
	}
	for range conns {
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(connWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestClientKey: IPv4 addresses count alone, IPv6 ones by their /64.
func TestClientKey(t *testing.T) {
	for _, tc := range []struct {
		addr net.Addr
		want string
	}{
		{&net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 1}, "192.0.2.7"},
		{&net.TCPAddr{IP: net.ParseIP("::ffff:192.0.2.7"), Port: 1}, "192.0.2.7"},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8:1:2:3:4:5:6"), Port: 1}, "2001:db8:1:2::"},
		{&net.UnixAddr{Name: "/tmp/s", Net: "unix"}, "invalid IP"},
	} {
		if got := clientKey(tc.addr).String(); got != tc.want {
			t.Errorf("clientKey(%v) = %s, want %s", tc.addr, got, tc.want)
		}
	}
	if clientKey(&net.TCPAddr{IP: net.ParseIP("2001:db8:1:2::9")}) != netip.MustParseAddr("2001:db8:1:2::") {
		t.Error("two addresses in one /64 count apart")
	}
}

const emfileChild = "HTTPX_TEST_EMFILE_CHILD"

// TestListenerKeepsAcceptBackoff: when accept fails with EMFILE, the
// Listener returns the error as it is, so http.Server logs it, backs off
// and retries instead of stopping; once descriptors are free again it
// serves the waiting connection. It runs in a child process, since it
// lowers the process's descriptor limit.
func TestListenerKeepsAcceptBackoff(t *testing.T) {
	if os.Getenv(emfileChild) == "1" {
		acceptUnderEMFILE(t)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestListenerKeepsAcceptBackoff$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), emfileChild+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("--- PASS: TestListenerKeepsAcceptBackoff")) {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

func acceptUnderEMFILE(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncbuf.Buffer{}
	srv := &http.Server{
		Handler:  http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok")) }),
		ErrorLog: log.New(logs, "", 0),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(NewListener(ln, ConnLimits{PerIP: 10})) }()

	// Fill the descriptor table, then free one slot for the client.
	var saved syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &saved); err != nil {
		t.Fatal(err)
	}
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer devnull.Close()
	low := saved
	low.Cur = uint64(devnull.Fd()) + 16
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	var fill []int
	for {
		fd, err := syscall.Dup(int(devnull.Fd()))
		if err != nil {
			break
		}
		fill = append(fill, fd)
	}
	syscall.Close(fill[len(fill)-1])
	fill = fill[:len(fill)-1]
	c, err := net.DialTimeout("tcp", ln.Addr().String(), connWait)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the accept error, retried", func() bool {
		return logs.Contains("too many open files; retrying in")
	})
	for _, fd := range fill {
		syscall.Close(fd)
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &saved); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(connWait))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("the waiting connection once descriptors are free: %v, %v", resp, err)
	}
	resp.Body.Close()
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		t.Fatalf("Serve: %v", err)
	}
}

// A Silent listener (TLS) closes a connection over the cap without the
// plain-text answer, which a TLS client would read as a broken handshake;
// the refusal is still counted.
func TestListenerSilentRefusal(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	l := NewListener(ln, ConnLimits{Total: 1, Silent: true, Metrics: reg})
	conns := acceptAll(t, l)
	dial(t, l)
	admitted(t, conns)
	over := dial(t, l)
	_ = over.SetReadDeadline(time.Now().Add(connWait))
	data, err := io.ReadAll(over)
	if len(data) != 0 || (err != nil && !errors.Is(err, syscall.ECONNRESET)) {
		t.Fatalf("a silent refusal sent %q (%v); want nothing, then the close", data, err)
	}
	if got := counter(t, reg, "chat_http_conns_refused_total", reasonNode); got != 1 {
		t.Errorf("refusals counted: %v, want 1", got)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for range conns {
	}
}
