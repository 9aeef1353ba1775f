//go:build !unix

package transporttest

import (
	"errors"
	"syscall"
)

// setReadBuffer is not implemented here; tests that need it fail to dial.
func setReadBuffer(syscall.RawConn, int) error {
	return errors.New("setting SO_RCVBUF before connect is implemented on unix only")
}
