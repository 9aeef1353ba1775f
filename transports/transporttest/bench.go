package transporttest

import (
	"io"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

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
