//go:build !linux

package httpx

import "net"

// setCork does nothing: TCP_CORK is Linux's.
func setCork(*net.TCPConn, bool) bool { return false }
