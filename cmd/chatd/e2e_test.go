//go:build unix

package main

// End-to-end tests: they build the real chatd binary, run it as a child
// process on loopback and talk to it over HTTP and WebSocket only, as an
// outside client would. They check the contract's "Command line" section
// and guarantees 2 (ack means durable, across kill -9) and 3 (sends are
// idempotent, across a restart).

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
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	"github.com/chatd/chatd/internal/syncbuf"
)

const (
	readyWait = 30 * time.Second // bound on the ready line
	exitWait  = 20 * time.Second // bound on the process exiting
	e2eSecret = "e2e-test-secret-0123456789abcdef0123456789"
)

// ---- building the binary ----

var (
	buildOnce sync.Once
	buildDir  string
	buildBin  string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// chatdBinary builds the chatd binary once per test run and returns its path.
// "go" resolves to the toolchain running the tests: go test puts its own
// GOROOT/bin first on PATH.
func chatdBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "chatd-e2e-")
		if buildErr != nil {
			return
		}
		buildBin = filepath.Join(buildDir, "chatd")
		cmd := exec.Command("go", "build", "-o", buildBin, ".")
		cmd.Env = os.Environ()
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatalf("building chatd: %v", buildErr)
	}
	return buildBin
}

// ---- running it ----

// proc is one chatd child process.
type proc struct {
	cmd    *exec.Cmd
	out    *syncbuf.Buffer
	ready  chan string   // receives the url from the ready line, once
	exited chan struct{} // closed once Wait has returned
	err    error         // Wait's result; read after exited closes
}

var readyURL = regexp.MustCompile(`url=(http://[^\s"]+)`)

// launch starts the binary with args and env (added to a copy of the
// test's environment without any CHAT_ variables). It does not wait.
func launch(t testing.TB, args []string, env ...string) *proc {
	t.Helper()
	bin := chatdBinary(t)
	cmd := exec.Command(bin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CHAT_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	p := &proc{cmd: cmd, out: &syncbuf.Buffer{}, ready: make(chan string, 1), exited: make(chan struct{})}
	cmd.Stderr = p.out
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start chatd: %v", err)
	}
	stdoutDone := make(chan struct{})
	go func() {
		defer close(stdoutDone)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			p.out.Write([]byte(line + "\n"))
			if !sent && strings.Contains(line, `msg="chatd ready"`) {
				if m := readyURL.FindStringSubmatch(line); m != nil {
					p.ready <- m[1]
					sent = true
				}
			}
		}
		_, _ = io.Copy(p.out, stdout) // keep draining after a scan error
	}()
	go func() {
		<-stdoutDone // Wait must follow the last read of the pipe
		p.err = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		if !p.hasExited() {
			_ = cmd.Process.Kill()
			select {
			case <-p.exited:
			case <-time.After(exitWait):
				t.Errorf("chatd pid %d did not exit after kill", cmd.Process.Pid)
			}
		}
		if t.Failed() {
			t.Logf("chatd pid %d output:\n%s", cmd.Process.Pid, p.out.String())
		}
	})
	return p
}

func (p *proc) hasExited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// waitReady waits, bounded, for the ready line and returns the base url.
// It then checks that /readyz answers 200 at once.
func (p *proc) waitReady(t testing.TB) string {
	t.Helper()
	var base string
	select {
	case base = <-p.ready:
	case <-p.exited:
		t.Fatalf("chatd exited before its ready line: %v\n%s", p.err, p.out.String())
	case <-time.After(readyWait):
		t.Fatalf("no ready line within %v\n%s", readyWait, p.out.String())
	}
	resp, err := http.Get(base + "/readyz")
	if err != nil {
		t.Fatalf("GET /readyz: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /readyz right after the ready line: %d %s", resp.StatusCode, body)
	}
	return base
}

// waitExit waits, bounded, for the process to exit.
func (p *proc) waitExit(t testing.TB) {
	t.Helper()
	timer := time.NewTimer(exitWait)
	defer timer.Stop()
	select {
	case <-p.exited:
	case <-timer.C:
		t.Fatalf("chatd did not exit within %v", exitWait)
	}
}

// kill9 kills the process with SIGKILL, as a crash would, and waits,
// bounded, until it has died of it.
func (p *proc) kill9(t testing.TB) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("SIGKILL: %v", err)
	}
	p.waitExit(t)
	if ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("chatd pid %d did not die of SIGKILL: %v", p.cmd.Process.Pid, p.err)
	}
}

// startChatd starts chatd on a loopback port with data dir and the shared
// secret, and waits until it is ready.
func startChatd(t testing.TB, data string) (*proc, string) {
	t.Helper()
	p := launch(t, []string{"--addr", "127.0.0.1:0", "--data", data, "--jwt-secret", e2eSecret})
	return p, p.waitReady(t)
}

// ---- talking to it ----

func token(t testing.TB, secret, sub, name string) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub":  sub,
		"name": name,
		"exp":  time.Now().Add(time.Hour).Unix(),
	}).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// envelope is the subset of the wire envelope these tests read.
type envelope struct {
	Type    string  `json:"type"`
	Ref     string  `json:"ref"`
	Room    string  `json:"room"`
	ID      string  `json:"id"`
	Seq     uint64  `json:"seq"`
	From    string  `json:"from"`
	Name    string  `json:"name"`
	Text    string  `json:"text"`
	TS      int64   `json:"ts"`
	Head    *uint64 `json:"head"`
	Code    string  `json:"code"`
	Message string  `json:"message"`
}

type historyPage struct {
	Messages []envelope `json:"messages"`
	Head     uint64     `json:"head"`
}

func newClient() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
}

// send posts one message and returns the status, the decoded body and the
// response (for Retry-After). A transport or decode error is returned as
// err: the send is then in doubt, not acked.
func send(c *http.Client, base, tok, room, id, text string) (int, envelope, http.Header, error) {
	body, _ := json.Marshal(map[string]string{"room": room, "id": id, "text": text})
	req, err := http.NewRequest(http.MethodPost, base+"/v1/send", bytes.NewReader(body))
	if err != nil {
		return 0, envelope{}, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return 0, envelope{}, nil, err
	}
	defer resp.Body.Close()
	var e envelope
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
		return resp.StatusCode, envelope{}, resp.Header, fmt.Errorf("decoding /v1/send answer: %w", err)
	}
	return resp.StatusCode, e, resp.Header, nil
}

func history(t *testing.T, c *http.Client, base, tok, room string, before uint64, limit int) historyPage {
	t.Helper()
	q := url.Values{"limit": {strconv.Itoa(limit)}}
	if before > 0 {
		q.Set("before", strconv.FormatUint(before, 10))
	}
	req, _ := http.NewRequest(http.MethodGet, base+"/v1/rooms/"+url.PathEscape(room)+"/history?"+q.Encode(), nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("history: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("history before=%d: %d %s", before, resp.StatusCode, body)
	}
	var p historyPage
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("history: %v: %s", err, body)
	}
	return p
}

// fullHistory walks room's history backwards with before= and returns it
// oldest first, with the head of the first (newest) page. It checks that
// the pages join up: seqs 1..head, contiguous, in order, ids unique.
func fullHistory(t *testing.T, c *http.Client, base, tok, room string) ([]envelope, uint64) {
	t.Helper()
	const limit = 16 // small, so paging is exercised
	first := history(t, c, base, tok, room, 0, limit)
	head := first.Head
	all := first.Messages
	for pages := 0; len(all) > 0 && all[0].Seq > 1; pages++ {
		if pages > 10000 {
			t.Fatal("history paging does not end")
		}
		p := history(t, c, base, tok, room, all[0].Seq, limit)
		if len(p.Messages) == 0 {
			t.Fatalf("history before=%d is empty, but seq %d is not 1", all[0].Seq, all[0].Seq)
		}
		all = append(append([]envelope(nil), p.Messages...), all...)
	}
	if uint64(len(all)) != head {
		t.Errorf("history holds %d messages, head is %d", len(all), head)
	}
	ids := map[string]uint64{}
	for i, m := range all {
		if m.Seq != uint64(i+1) {
			t.Fatalf("history position %d has seq %d, want %d (gap, duplicate or disorder)", i, m.Seq, i+1)
		}
		if m.Type != "message" || m.Room != room {
			t.Errorf("history seq %d: type %q room %q", m.Seq, m.Type, m.Room)
		}
		if prev, dup := ids[m.ID]; dup {
			t.Errorf("id %q is in history twice: seqs %d and %d", m.ID, prev, m.Seq)
		}
		ids[m.ID] = m.Seq
	}
	return all, head
}

// ---- tests ----

// TestE2ECrashDurability sends from several users at once, kills chatd
// with SIGKILL mid-stream, restarts it on the same data directory and
// checks that every acked message survived at its acked seq, with no gaps
// or duplicates, and that re-sends stay idempotent across the crash.
func TestE2ECrashDurability(t *testing.T) {
	data := t.TempDir()
	p1, base := startChatd(t, data)
	client := newClient()
	defer client.CloseIdleConnections()

	const (
		room       = "e2e-crash"
		senders    = 4
		killAfter  = 40  // acks recorded before the kill
		maxPerUser = 120 // bound, should the kill never come
	)
	type sent struct {
		user, text string
		seq        uint64
	}
	var (
		mu       sync.Mutex
		acked    = map[string]sent{} // id → what was acked
		inFlight = map[string]sent{} // id → sends in doubt at the kill
		nAcked   atomic.Int64
		reached  = make(chan struct{})
		reachOne sync.Once
		killed   atomic.Bool
		stop     = make(chan struct{})
		wg       sync.WaitGroup
	)
	users := make([]string, senders)
	tokens := make([]string, senders)
	for i := range senders {
		users[i] = fmt.Sprintf("crash-user-%d", i)
		tokens[i] = token(t, e2eSecret, users[i], fmt.Sprintf("Crash User %d", i))
	}
	for i := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < maxPerUser; n++ {
				id := fmt.Sprintf("u%d-m%03d", i, n)
				text := fmt.Sprintf("message %d from %s", n, users[i])
				for {
					status, env, hdr, err := send(client, base, tokens[i], room, id, text)
					if err != nil {
						if killed.Load() {
							mu.Lock()
							inFlight[id] = sent{user: users[i], text: text}
							mu.Unlock()
						} else {
							t.Errorf("send %s before the kill: %v", id, err)
						}
						return
					}
					if status == http.StatusTooManyRequests && env.Code == "rate_limited" {
						wait := time.Second
						if s, err := strconv.Atoi(hdr.Get("Retry-After")); err == nil && s > 0 && s <= 5 {
							wait = time.Duration(s) * time.Second
						}
						select {
						case <-time.After(wait):
							continue // the same id again
						case <-stop:
							return
						}
					}
					if status != http.StatusOK || env.Type != "ack" || env.ID != id || env.Room != room || env.Seq == 0 {
						t.Errorf("send %s: status %d, answer %+v", id, status, env)
						return
					}
					mu.Lock()
					acked[id] = sent{user: users[i], text: text, seq: env.Seq}
					mu.Unlock()
					if nAcked.Add(1) >= killAfter {
						reachOne.Do(func() { close(reached) })
					}
					break
				}
				select {
				case <-stop:
					return
				default:
				}
			}
		}()
	}
	stopSenders := sync.OnceFunc(func() { close(stop); wg.Wait() })
	t.Cleanup(stopSenders)

	bound := time.NewTimer(20 * time.Second)
	select {
	case <-reached:
		bound.Stop()
	case <-bound.C:
		killed.Store(true)
		stopSenders()
		t.Fatalf("only %d acks within 20s", nAcked.Load())
	}
	killed.Store(true)
	p1.kill9(t)
	// Senders blocked in a request fail fast now that the socket is gone;
	// one asleep on Retry-After wakes on stop.
	stopSenders()
	if t.Failed() {
		t.FailNow()
	}
	mu.Lock()
	t.Logf("%d sends acked, %d in flight at the kill", len(acked), len(inFlight))
	mu.Unlock()

	// Restart on the same data directory.
	_, base2 := startChatd(t, data)
	reader := token(t, e2eSecret, "crash-reader", "Reader")
	all, head := fullHistory(t, client, base2, reader, room)
	if t.Failed() {
		t.FailNow()
	}
	byID := map[string]envelope{}
	for _, m := range all {
		byID[m.ID] = m
	}
	seqs := map[uint64]string{}
	for id, a := range acked {
		m, ok := byID[id]
		if !ok {
			t.Errorf("acked message %s (seq %d) is missing after the crash", id, a.seq)
			continue
		}
		if m.Seq != a.seq {
			t.Errorf("acked message %s: acked seq %d, history seq %d", id, a.seq, m.Seq)
		}
		if m.From != a.user || m.Text != a.text {
			t.Errorf("acked message %s: history from %q text %q, want %q %q", id, m.From, m.Text, a.user, a.text)
		}
		if other, dup := seqs[a.seq]; dup {
			t.Errorf("acks for %s and %s both gave seq %d", other, id, a.seq)
		}
		seqs[a.seq] = id
	}
	// Everything stored is either acked or was in flight: nothing invented.
	for _, m := range all {
		_, a := acked[m.ID]
		_, f := inFlight[m.ID]
		if !a && !f {
			t.Errorf("history seq %d holds id %q, which was neither acked nor in flight", m.Seq, m.ID)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// Re-send some acked messages and every in-flight one.
	userIndex := func(user string) int {
		for i, u := range users {
			if u == user {
				return i
			}
		}
		t.Fatalf("unknown user %q", user)
		return -1
	}
	var resendAcked []string
	for i := range senders { // the first ack of each sender
		id := fmt.Sprintf("u%d-m%03d", i, 0)
		if _, ok := acked[id]; ok {
			resendAcked = append(resendAcked, id)
		}
	}
	for _, m := range all[len(all)-min(3, len(all)):] { // and the newest stored
		if _, ok := acked[m.ID]; ok {
			resendAcked = append(resendAcked, m.ID)
		}
	}
	for _, id := range resendAcked {
		a := acked[id]
		status, env, _, err := send(client, base2, tokens[userIndex(a.user)], room, id, a.text)
		if err != nil || status != http.StatusOK {
			t.Errorf("re-send of acked %s: status %d, %+v, %v", id, status, env, err)
			continue
		}
		if env.Type != "ack" || env.ID != id || env.Seq != a.seq {
			t.Errorf("re-send of acked %s after the crash: got %+v, want seq %d", id, env, a.seq)
		}
	}
	resentInFlight := map[string]uint64{}
	for id, f := range inFlight {
		status, env, _, err := send(client, base2, tokens[userIndex(f.user)], room, id, f.text)
		if err != nil || status != http.StatusOK || env.Type != "ack" || env.ID != id || env.Seq == 0 {
			t.Errorf("re-send of in-flight %s: status %d, %+v, %v", id, status, env, err)
			continue
		}
		if m, stored := byID[id]; stored && env.Seq != m.Seq {
			t.Errorf("in-flight %s was stored at seq %d before the crash; re-send acked seq %d", id, m.Seq, env.Seq)
		}
		if _, stored := byID[id]; !stored && env.Seq <= head {
			t.Errorf("in-flight %s was not stored; re-send got seq %d, not above head %d", id, env.Seq, head)
		}
		resentInFlight[id] = env.Seq
		// And once more: the new ack is as stable as the old ones.
		_, env2, _, err := send(client, base2, tokens[userIndex(f.user)], room, id, f.text)
		if err != nil || env2.Seq != env.Seq {
			t.Errorf("second re-send of in-flight %s: %+v, %v; want seq %d", id, env2, err, env.Seq)
		}
	}

	all2, head2 := fullHistory(t, client, base2, reader, room)
	want := head
	for id := range inFlight {
		if _, stored := byID[id]; !stored {
			want++
		}
	}
	if head2 != want {
		t.Errorf("after re-sends head is %d, want %d (old head %d plus the in-flight sends not stored before)", head2, want, head)
	}
	byID2 := map[string]envelope{}
	for _, m := range all2 {
		byID2[m.ID] = m
	}
	for id, a := range acked {
		if m := byID2[id]; m.Seq != a.seq {
			t.Errorf("after re-sends, acked %s is at seq %d, want %d", id, m.Seq, a.seq)
		}
	}
	for id, seq := range resentInFlight {
		if m := byID2[id]; m.Seq != seq {
			t.Errorf("after re-sends, in-flight %s is at seq %d, want %d", id, m.Seq, seq)
		}
	}
}

// TestE2EGracefulShutdown sends SIGTERM to an idle chatd with one
// WebSocket client connected: the client gets close 1001 with a reconnect
// hint, and the process logs "chatd stopped" and exits 0.
func TestE2EGracefulShutdown(t *testing.T) {
	p, base := startChatd(t, t.TempDir())
	tok := token(t, e2eSecret, "ws-user", "WS User")

	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	conn, resp, err := d.Dial("ws"+strings.TrimPrefix(base, "http")+"/v1/ws",
		http.Header{"Authorization": {"Bearer " + tok}})
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial ws: status %d: %v", status, err)
	}
	defer conn.Close()

	// Join a room and wait for joined, so the session is certainly open.
	if err := conn.WriteJSON(map[string]string{"type": "join", "room": "lobby"}); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for joined := false; !joined; {
		_, data, err := conn.ReadMessage()
		if err != nil {
			t.Fatalf("waiting for joined: %v", err)
		}
		for _, e := range decodeFrame(t, data) {
			if e.Type == "joined" && e.Room == "lobby" {
				joined = true
			}
		}
	}

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(exitWait))
	var closeErr *websocket.CloseError
	for {
		_, data, err := conn.ReadMessage()
		if err != nil {
			if !errors.As(err, &closeErr) {
				t.Fatalf("after SIGTERM the socket ended without a close frame: %v", err)
			}
			break
		}
		t.Logf("frame before close: %s", data)
	}
	if closeErr.Code != websocket.CloseGoingAway {
		t.Errorf("close code %d, want %d", closeErr.Code, websocket.CloseGoingAway)
	}
	if !strings.Contains(closeErr.Text, "reconnect_ms=") {
		t.Errorf("close reason %q has no reconnect_ms=", closeErr.Text)
	}

	p.waitExit(t)
	if p.err != nil || p.cmd.ProcessState.ExitCode() != 0 {
		t.Errorf("chatd exited with %v (code %d), want status 0", p.err, p.cmd.ProcessState.ExitCode())
	}
	if out := p.out.String(); !strings.Contains(out, `msg="chatd stopped"`) {
		t.Errorf(`no "chatd stopped" line in the log:\n%s`, out)
	}
}

// decodeFrame reads a server frame: one envelope or a JSON array of them.
func decodeFrame(t *testing.T, data []byte) []envelope {
	t.Helper()
	data = bytes.TrimSpace(data)
	if len(data) > 0 && data[0] == '[' {
		var es []envelope
		if err := json.Unmarshal(data, &es); err != nil {
			t.Fatalf("frame %s: %v", data, err)
		}
		return es
	}
	var e envelope
	if err := json.Unmarshal(data, &e); err != nil {
		t.Fatalf("frame %s: %v", data, err)
	}
	return []envelope{e}
}

// TestE2EBothKeysRejected: the binary refuses --jwt-secret together with
// --jwt-public-key (also when one of them comes from the environment).
func TestE2EBothKeysRejected(t *testing.T) {
	key := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(key, []byte("not read"), 0o600); err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	cases := []struct {
		name string
		args []string
		env  []string
	}{
		{"flags", []string{"--addr", "127.0.0.1:0", "--data", data, "--jwt-secret", e2eSecret, "--jwt-public-key", key}, nil},
		{"flag and env", []string{"--addr", "127.0.0.1:0", "--data", data, "--jwt-public-key", key}, []string{"CHAT_JWT_SECRET=" + e2eSecret}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := launch(t, c.args, c.env...)
			p.waitExit(t)
			if p.cmd.ProcessState.ExitCode() == 0 {
				t.Fatalf("chatd accepted both keys and exited 0:\n%s", p.out.String())
			}
			select {
			case u := <-p.ready:
				t.Errorf("chatd became ready at %s with both keys", u)
			default:
			}
			out := p.out.String()
			if !strings.Contains(out, "--jwt-secret") || !strings.Contains(out, "--jwt-public-key") {
				t.Errorf("the error does not name both flags: %q", out)
			}
			if strings.Contains(out, e2eSecret) {
				t.Errorf("the error prints the secret: %q", out)
			}
		})
	}
}

// TestE2EEnvTwins: the binary takes its secret and data directory from
// the environment, and a flag beats its environment twin.
func TestE2EEnvTwins(t *testing.T) {
	data := t.TempDir()
	p := launch(t, []string{"--addr", "127.0.0.1:0"},
		"CHAT_ADDR=this-address-would-not-listen", // the flag wins
		"CHAT_DATA="+data,
		"CHAT_JWT_SECRET="+e2eSecret)
	base := p.waitReady(t)
	if _, err := os.Stat(filepath.Join(data, "chat.db")); err != nil {
		t.Errorf("CHAT_DATA was not used: %v", err)
	}
	client := newClient()
	defer client.CloseIdleConnections()
	get := func(tok string) int {
		req, _ := http.NewRequest(http.MethodGet, base+"/v1/negotiate", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := get(token(t, e2eSecret, "env-user", "")); s != http.StatusOK {
		t.Errorf("token signed with CHAT_JWT_SECRET: status %d, want 200", s)
	}
	if s := get(token(t, "some-other-secret-0123456789abcdef", "env-user", "")); s != http.StatusUnauthorized {
		t.Errorf("token signed with another secret: status %d, want 401", s)
	}
	// Dev login exists only without a key.
	resp, err := client.Post(base+"/v1/dev/login", "application/json", strings.NewReader(`{"name":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		t.Errorf("POST /v1/dev/login answered 200 with a key configured through the environment")
	}
}

// TestNodeIdentity: the node's id defaults to hostname-port-<random>, new
// at each start, and its
// advertised address to the listener's, with the hostname for a listener
// on every interface; configured values win.
func TestNodeIdentity(t *testing.T) {
	host, _ := os.Hostname()
	tcp := func(s string) net.Addr { a, _ := net.ResolveTCPAddr("tcp", s); return a }
	m := NewMain()
	id1, addr := m.nodeIdentity(tcp("0.0.0.0:8081"))
	if !strings.HasPrefix(id1, host+"-8081-") || addr != net.JoinHostPort(host, "8081") {
		t.Errorf("every interface: id %q addr %q", id1, addr)
	}
	if id2, _ := m.nodeIdentity(tcp("0.0.0.0:8081")); id2 == id1 {
		t.Errorf("two starts on one port got the same id %q", id1)
	}
	if id, addr := m.nodeIdentity(tcp("127.0.0.1:8082")); !strings.HasPrefix(id, host+"-8082-") || addr != "127.0.0.1:8082" {
		t.Errorf("loopback: id %q addr %q", id, addr)
	}
	m.Config.NodeID, m.Config.AdvertiseAddr = "n1", "chat-1.internal:80"
	if id, addr := m.nodeIdentity(tcp("127.0.0.1:8082")); id != "n1" || addr != "chat-1.internal:80" {
		t.Errorf("configured: id %q addr %q", id, addr)
	}
}

// TestParseFlags checks flags, their environment twins and defaults in
// process.
func TestParseFlags(t *testing.T) {
	env := func(kv map[string]string) func(string) string {
		return func(k string) string { return kv[k] }
	}
	t.Run("defaults", func(t *testing.T) {
		m := NewMain()
		if err := m.ParseFlags(nil, env(nil)); err != nil {
			t.Fatal(err)
		}
		c := m.Config
		if c.Addr != ":8080" || c.Data != "./data" || c.JWTSecret != "" || c.JWTPublicKey != "" ||
			c.Redis != "" || c.Flags != "" || c.AllowedOrigins != "" ||
			c.RedisRisk || c.NodeID != "" || c.AdvertiseAddr != "" {
			t.Errorf("defaults: %+v", c)
		}
	})
	t.Run("env twins", func(t *testing.T) {
		m := NewMain()
		err := m.ParseFlags(nil, env(map[string]string{
			"CHAT_ADDR":              "127.0.0.1:9999",
			"CHAT_DATA":              "/env/data",
			"CHAT_JWT_SECRET":        "env-secret",
			"CHAT_REDIS":             "redis://env:6379",
			"CHAT_FLAGS":             "/env/flags.json",
			"CHAT_ALLOWED_ORIGINS":   "https://a.example,https://b.example",
			"CHAT_REDIS_ACCEPT_RISK": "true",
			"CHAT_NODE_ID":           "env-node",
			"CHAT_ADVERTISE_ADDR":    "chat-1.internal:8080",
		}))
		if err != nil {
			t.Fatal(err)
		}
		c := m.Config
		if c.Addr != "127.0.0.1:9999" || c.Data != "/env/data" || c.JWTSecret != "env-secret" ||
			c.Redis != "redis://env:6379" || c.Flags != "/env/flags.json" ||
			c.AllowedOrigins != "https://a.example,https://b.example" ||
			!c.RedisRisk || c.NodeID != "env-node" || c.AdvertiseAddr != "chat-1.internal:8080" {
			t.Errorf("from env: %+v", c)
		}
		m = NewMain()
		if err := m.ParseFlags(nil, env(map[string]string{"CHAT_JWT_PUBLIC_KEY": "/env/key.pem"})); err != nil {
			t.Fatal(err)
		}
		if m.Config.JWTPublicKey != "/env/key.pem" {
			t.Errorf("CHAT_JWT_PUBLIC_KEY: got %q", m.Config.JWTPublicKey)
		}
	})
	t.Run("flag beats env", func(t *testing.T) {
		m := NewMain()
		err := m.ParseFlags(
			[]string{"--addr", "127.0.0.1:1234", "--data=/flag/data", "--jwt-secret", "flag-secret",
				"--node-id", "flag-node", "--redis-accept-risk=false"},
			env(map[string]string{"CHAT_ADDR": "127.0.0.1:9999", "CHAT_DATA": "/env/data",
				"CHAT_JWT_SECRET": "env-secret", "CHAT_FLAGS": "/env/flags.json",
				"CHAT_NODE_ID": "env-node", "CHAT_REDIS_ACCEPT_RISK": "true"}))
		if err != nil {
			t.Fatal(err)
		}
		c := m.Config
		if c.Addr != "127.0.0.1:1234" || c.Data != "/flag/data" || c.JWTSecret != "flag-secret" ||
			c.NodeID != "flag-node" || c.RedisRisk {
			t.Errorf("flags should win: %+v", c)
		}
		if c.Flags != "/env/flags.json" {
			t.Errorf("an env twin of a flag not given should still apply: Flags = %q", c.Flags)
		}
	})
	t.Run("both keys", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			env  map[string]string
		}{
			{[]string{"--jwt-secret", "s", "--jwt-public-key", "k.pem"}, nil},
			{[]string{"--jwt-public-key", "k.pem"}, map[string]string{"CHAT_JWT_SECRET": "s"}},
			{nil, map[string]string{"CHAT_JWT_SECRET": "s", "CHAT_JWT_PUBLIC_KEY": "k.pem"}},
		} {
			err := NewMain().ParseFlags(tc.args, env(tc.env))
			if err == nil {
				t.Errorf("args %q env %v: no error for both keys", tc.args, tc.env)
				continue
			}
			if msg := err.Error(); !strings.Contains(msg, "--jwt-secret") || !strings.Contains(msg, "--jwt-public-key") {
				t.Errorf("args %q env %v: unclear error %q", tc.args, tc.env, msg)
			}
		}
	})
	t.Run("bad input", func(t *testing.T) {
		if err := NewMain().ParseFlags([]string{"--no-such-flag"}, env(nil)); err == nil {
			t.Error("an unknown flag was accepted")
		}
		if err := NewMain().ParseFlags(nil, env(map[string]string{"CHAT_HEARTBEAT": "soon"})); err == nil ||
			!strings.Contains(err.Error(), "CHAT_HEARTBEAT") {
			t.Errorf("a bad CHAT_HEARTBEAT: %v", err)
		}
		if err := NewMain().ParseFlags(nil, env(map[string]string{"CHAT_REDIS_ACCEPT_RISK": "perhaps"})); err == nil ||
			!strings.Contains(err.Error(), "CHAT_REDIS_ACCEPT_RISK") {
			t.Errorf("a bad CHAT_REDIS_ACCEPT_RISK: %v", err)
		}
	})
}
