package transporttest

import (
	"context"
	"io"
	"runtime/pprof"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// NewBenchEnv is NewEnv for a benchmark: degradation wired as chatd runs
// it, sends unlimited (the benchmark sets the pace), and the server's
// goroutines labelled side=server, so that a CPU profile splits them
// from the clients' (which the benchmark labels side=client).
func NewBenchEnv(b testing.TB, opts Options) *Env {
	b.Helper()
	opts.Degrade = true
	opts.Hub.SendRate, opts.Hub.SendBurst = 1e9, 1<<30
	var e *Env
	pprof.Do(context.Background(), pprof.Labels("side", "server"), func(context.Context) { e = NewEnv(b, opts) })
	return e
}

// CPUTime returns the CPU time, user and system, the process has used:
// benchmarks take their cost per operation from it, so that time the
// machine gave to other processes does not count.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// ReadMessage reads c's next message into buf, grown as needed, and
// returns it: one buffer for every message a benchmark client reads.
func ReadMessage(c *websocket.Conn, buf []byte) ([]byte, error) {
	_, r, err := c.NextReader()
	if err != nil {
		return buf[:0], err
	}
	buf = buf[:0]
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}
