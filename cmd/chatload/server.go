package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// serverProc is the server under test when the tool starts it itself
// (--server-cmd). The command runs as `sh -c "exec <cmd>"`, so the shell
// becomes the server (taskset execs too) and a kill reaches the server
// itself.
type serverProc struct {
	cmdline string    // Static after construction.
	log     io.Writer // the server's stdout and stderr; static

	mu   sync.Mutex
	cmd  *exec.Cmd     // the running process; guarded by mu
	done chan struct{} // closed when it has exited; guarded by mu
}

// startServer starts cmdline with its output going to log.
func startServer(cmdline string, log io.Writer) (*serverProc, error) {
	s := &serverProc{cmdline: cmdline, log: log}
	return s, s.spawn()
}

func (s *serverProc) spawn() error {
	cmd := exec.Command("sh", "-c", "exec "+s.cmdline)
	cmd.Stdout, cmd.Stderr = s.log, s.log
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("--server-cmd: %w", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	return nil
}

// kill ends the server with SIGKILL, as a crash would, and waits for it.
func (s *serverProc) kill() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	_ = cmd.Process.Kill()
	<-done
}

// cpu returns the CPU time the running server has used since it started,
// if the system says (Linux).
func (s *serverProc) cpu() (time.Duration, bool) {
	s.mu.Lock()
	cmd := s.cmd
	s.mu.Unlock()
	return procCPU(cmd.Process.Pid)
}

// restart starts the command again.
func (s *serverProc) restart() error { return s.spawn() }

// stop asks the server to drain (SIGTERM) and kills it if it has not
// exited within 20 s.
func (s *serverProc) stop() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// ready reports whether GET /readyz answers 200 within a second.
func ready(ctx context.Context, hc *http.Client, base string) bool {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+"/readyz", nil)
	if err != nil {
		return false
	}
	resp, err := hc.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// errTimeout means the server did not reach the awaited state in time.
var errTimeout = errors.New("chatload: timed out")

// waitReadiness polls /readyz every interval until it reads want, and
// returns when it first did; errTimeout after timeout.
func waitReadiness(ctx context.Context, hc *http.Client, base string, want bool, interval, timeout time.Duration) (time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		ok := ready(ctx, hc, base)
		if ctx.Err() != nil {
			return time.Time{}, errTimeout
		}
		if ok == want {
			return time.Now(), nil
		}
		select {
		case <-ctx.Done():
			return time.Time{}, errTimeout
		case <-t.C:
		}
	}
}

// openLog opens dir/name for the server's output, or discards it when dir
// is empty.
func openLog(dir, name string) (io.WriteCloser, error) {
	if dir == "" {
		return nopCloser{io.Discard}, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	return os.Create(dir + "/" + name)
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }
