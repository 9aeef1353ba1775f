//go:build linux || darwin || dragonfly || freebsd || netbsd || openbsd

package httpx

import (
	"errors"
	"net"
	"syscall"
)

// PeeksConnections reports whether ClientGone can peek at a connection
// here; where it cannot, it sees only a request's ended context.
const PeeksConnections = true

// peerClosed reports whether c's peer has closed its end: a peek at the
// next byte, without waiting, finds the end of stream (or a reset). A
// byte waiting, or none yet, is a peer still there.
func peerClosed(c *net.TCPConn) bool {
	rc, err := c.SyscallConn()
	if err != nil {
		return false
	}
	var (
		n    int
		perr error
		b    [1]byte
	)
	// Control, not Read: net/http's background read may hold the
	// connection's read lock for as long as the handler runs.
	if err := rc.Control(func(fd uintptr) {
		n, _, perr = syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	}); err != nil {
		return false
	}
	switch {
	case perr == nil:
		return n == 0
	case errors.Is(perr, syscall.EAGAIN), errors.Is(perr, syscall.EINTR):
		return false
	default:
		return errors.Is(perr, syscall.ECONNRESET) || errors.Is(perr, syscall.EPIPE)
	}
}
