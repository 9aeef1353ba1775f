//go:build unix

package transporttest

import "syscall"

// setReadBuffer sets SO_RCVBUF on a socket that is not yet connected.
func setReadBuffer(rc syscall.RawConn, n int) error {
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, n)
	}); err != nil {
		return err
	}
	return serr
}
