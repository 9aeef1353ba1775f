package browsertest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// chatdBin is the server binary, built once by TestMain.
var chatdBin string

// buildChatd builds ./cmd/chatd into dir.
func buildChatd(dir string) (string, error) {
	bin := filepath.Join(dir, "chatd")
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, "github.com/chatd/chatd/cmd/chatd")...)
	cmd.Env = serverEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build ./cmd/chatd: %w\n%s", err, out)
	}
	return bin, nil
}

// serverEnv is the environment without CHAT_* variables, so the server
// under test is always in dev mode whatever the caller's shell holds.
func serverEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CHAT_") {
			env = append(env, kv)
		}
	}
	return env
}

// freeAddr returns a loopback address that was free a moment ago, so a
// server can be killed and started again on the same port.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// server is one chatd process.
type server struct {
	t    *testing.T
	addr string
	data string
	args []string // flags besides the address, the data and the log level

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	log  bytes.Buffer  // guarded by mu
}

// startServer runs chatd on a free port with a fresh data directory, and
// args as more flags.
func startServer(t *testing.T, args ...string) *server {
	t.Helper()
	s := &server{t: t, addr: freeAddr(t), data: t.TempDir(), args: args}
	s.start()
	t.Cleanup(s.stop)
	return s
}

// URL is the server's base URL.
func (s *server) URL() string { return "http://" + s.addr }

// metric returns the value of one series of the server's /metrics, as
// written there (`name` or `name{label="value"}`), or -1 if it is absent.
func (s *server) metric(t *testing.T, series string) float64 {
	t.Helper()
	resp, err := http.Get(s.URL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", series, err)
			}
			return f
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return -1
}

// start runs the process and waits for its ready line.
func (s *server) start() {
	t := s.t
	t.Helper()
	cmd := exec.Command(chatdBin, append([]string{"--addr", s.addr, "--data", s.data, "--log-level", "info"}, s.args...)...)
	cmd.Env = serverEnv()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	done := make(chan struct{})
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		once := false
		for sc.Scan() {
			line := sc.Text()
			s.mu.Lock()
			s.log.WriteString(line + "\n")
			s.mu.Unlock()
			if !once && strings.Contains(line, `msg="chatd ready"`) {
				once = true
				close(ready)
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		_ = cmd.Wait()
		close(done)
	}()
	select {
	case <-ready:
	case <-done:
		t.Fatalf("chatd exited before it was ready:\n%s", s.logs())
	case <-time.After(20 * time.Second):
		t.Fatalf("chatd not ready after 20s:\n%s", s.logs())
	}
}

// kill ends the process with SIGKILL, as a crash would.
func (s *server) kill() {
	s.t.Helper()
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		s.t.Fatalf("kill chatd: %v", err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		s.t.Fatal("chatd did not exit after SIGKILL")
	}
}

// restart starts the process again on the same address and data.
func (s *server) restart() {
	s.t.Helper()
	s.start()
}

// stop ends the process (SIGTERM, then SIGKILL) and, when the test
// failed, prints its log.
func (s *server) stop() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	select {
	case <-done:
	default:
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	if s.t.Failed() {
		s.t.Logf("chatd log:\n%s", s.logs())
	}
}

func (s *server) logs() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

// api is a plain HTTP client of the server, for checks from the test.
type api struct {
	t     *testing.T
	base  string
	token string
}

// login gets a dev token for name.
func (s *server) login(t *testing.T, name string) *api {
	t.Helper()
	a := &api{t: t, base: s.URL()}
	var out struct{ Token string }
	a.do("POST", "/v1/dev/login", map[string]string{"name": name}, &out)
	a.token = out.Token
	return a
}

func (a *api) do(method, path string, body, out any) {
	a.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, a.base+path, rd)
	if err != nil {
		a.t.Fatal(err)
	}
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		a.t.Fatalf("%s %s: %s: %s", method, path, resp.Status, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			a.t.Fatalf("%s %s: %v: %s", method, path, err, data)
		}
	}
}

// send posts a message and returns its seq.
func (a *api) send(room, id, text string) uint64 {
	a.t.Helper()
	var ack struct{ Seq uint64 }
	a.do("POST", "/v1/send", map[string]string{"room": room, "id": id, "text": text}, &ack)
	return ack.Seq
}

// message is a message as the history endpoint gives it.
type message struct {
	Seq  uint64 `json:"seq"`
	ID   string `json:"id"`
	From string `json:"from"`
	Text string `json:"text"`
}

// history returns the newest page of room, oldest first.
func (a *api) history(room string) []message {
	a.t.Helper()
	var page struct{ Messages []message }
	a.do("GET", "/v1/rooms/"+url.PathEscape(room)+"/history?limit=200", nil, &page)
	return page.Messages
}

// setLevel pins the degradation level through the admin API.
func (a *api) setLevel(level int) {
	a.t.Helper()
	a.do("PUT", "/v1/admin/level", map[string]any{"level": level, "mode": "manual"}, nil)
}

// loginAdmin gets a dev token with admin rights.
func (s *server) loginAdmin(t *testing.T, name string) *api {
	t.Helper()
	a := &api{t: t, base: s.URL()}
	var out struct{ Token string }
	a.do("POST", "/v1/dev/login", map[string]any{"name": name, "admin": true}, &out)
	a.token = out.Token
	return a
}
