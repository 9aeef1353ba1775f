// Package redistest runs a real redis-server for tests: Debian's binary
// (scripts/deps.sh installs it), one private process per Start, listening
// on a TCP port on loopback and on a Unix socket in the test's temporary
// directory, with its data there too. No mocks: the tests of the Redis
// engine and of the cluster talk to the real thing.
//
// A server can be killed with SIGKILL and restarted on the same data and
// the same addresses, which is how the outage tests take Redis away. A
// Proxy in front of it takes Redis away from some clients only (Cut,
// Restore), as a network fault would.
package redistest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Binary is the redis-server the tests run.
var Binary = "redis-server"

// Options tune one server.
type Options struct {
	// Durable runs with AOF and appendfsync always: what chatd needs for
	// "ack means durable". Without it the server persists nothing.
	Durable bool
}

// Server is one running redis-server.
type Server struct {
	Dir  string // its data directory
	Addr string // host:port on loopback
	Sock string // Unix socket path

	opts Options
	t    testing.TB

	mu  sync.Mutex
	cmd *exec.Cmd     // guarded by mu
	end chan struct{} // closed when cmd exits; guarded by mu
}

// Start starts a server for the test and stops it at the test's end. It
// fails the test if redis-server is missing or does not come up.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	if _, err := exec.LookPath(Binary); err != nil {
		t.Fatalf("redistest: %s not found (make deps installs it): %v", Binary, err)
	}
	dir := t.TempDir()
	s := &Server{Dir: dir, Sock: filepath.Join(dir, "redis.sock"), opts: opts, t: t}
	var err error
	for range 5 { // a free port can be taken between probe and bind
		s.Addr, err = freePort()
		if err != nil {
			continue
		}
		if err = s.start(); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// URL is a redis:// URL for the server's TCP address.
func (s *Server) URL() string { return "redis://" + s.Addr + "/0" }

// SockURL is a unix:// URL for the server's socket.
func (s *Server) SockURL() string { return "unix://" + s.Sock }

func (s *Server) args() []string {
	host, port, _ := net.SplitHostPort(s.Addr)
	a := []string{
		"--bind", host, "--port", port,
		"--unixsocket", s.Sock, "--unixsocketperm", "700",
		"--dir", s.Dir, "--save", "", "--daemonize", "no",
		"--logfile", filepath.Join(s.Dir, "redis.log"),
		"--maxclients", "10000",
	}
	if s.opts.Durable {
		a = append(a, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		a = append(a, "--appendonly", "no")
	}
	return a
}

// start runs the process and waits until it answers PING.
func (s *Server) start() error {
	cmd := exec.Command(Binary, s.args()...)
	cmd.Dir = s.Dir
	if err := cmd.Start(); err != nil {
		return err
	}
	end := make(chan struct{})
	go func() { _ = cmd.Wait(); close(end) }()
	s.mu.Lock()
	s.cmd, s.end = cmd, end
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		if err := ping(ctx, s.Addr); err == nil {
			return nil
		}
		select {
		case <-end:
			log, _ := os.ReadFile(filepath.Join(s.Dir, "redis.log"))
			return fmt.Errorf("redis-server exited: %s", tail(string(log)))
		case <-ctx.Done():
			_ = cmd.Process.Kill()
			<-end
			return errors.New("redis-server did not answer PING within 10s")
		case <-time.After(5 * time.Millisecond): // startup poll, not test synchronisation
		}
	}
}

// Kill stops the server with SIGKILL, as a crash would, and waits for it.
func (s *Server) Kill() {
	s.mu.Lock()
	cmd, end := s.cmd, s.end
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-end
}

// Restart starts a killed server again on the same data and addresses.
func (s *Server) Restart() {
	s.t.Helper()
	s.Kill()
	var err error
	for range 20 { // the old socket's port may linger briefly
		if err = s.start(); err == nil {
			return
		}
	}
	s.t.Fatalf("redistest: restart: %v", err)
}

// Stop kills the server; Start registers it as the test's cleanup.
func (s *Server) Stop() { s.Kill() }

// Do sends one command and returns its reply line, for tests that need to
// poke the server without a client library (CONFIG, FLUSHALL, DEBUG).
func (s *Server) Do(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return do(ctx, s.Addr, args...)
}

func ping(ctx context.Context, addr string) error {
	r, err := do(ctx, addr, "PING")
	if err != nil {
		return err
	}
	if r != "+PONG" {
		return fmt.Errorf("PING: %q", r)
	}
	return nil
}

// do speaks just enough RESP to send one command and read a one-line reply.
func do(ctx context.Context, addr string, args ...string) (string, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write([]byte(b.String())); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimRight(line, "\r\n"), err
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func tail(s string) string {
	if len(s) > 2000 {
		s = s[len(s)-2000:]
	}
	return strings.TrimSpace(s)
}
