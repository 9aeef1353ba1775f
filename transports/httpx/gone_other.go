//go:build !linux

package httpx

import "net"

// peerClosed cannot tell here: the peek is Linux's.
func peerClosed(*net.TCPConn) bool { return false }
