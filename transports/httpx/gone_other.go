//go:build !(linux || darwin || dragonfly || freebsd || netbsd || openbsd)

package httpx

import "net"

// PeeksConnections reports whether ClientGone can peek at a connection
// here; where it cannot, it sees only a request's ended context.
const PeeksConnections = false

// peerClosed cannot tell here: the peek (recv with MSG_PEEK and
// MSG_DONTWAIT) is built for Linux, macOS and the BSDs.
func peerClosed(*net.TCPConn) bool { return false }
