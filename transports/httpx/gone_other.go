//go:build !(linux || darwin || dragonfly || freebsd || netbsd || openbsd)

package httpx

import "net"

// peerClosed cannot tell here: the peek (recv with MSG_PEEK and
// MSG_DONTWAIT) is built for Linux, macOS and the BSDs.
func peerClosed(*net.TCPConn) bool { return false }
