package httpx

import (
	"context"
	"net"
	"net/http"
	"sync"
)

// connKey is the context key under which KeepConn keeps a connection.
type connKey struct{}

// KeepConn is an http.Server ConnContext that keeps each connection in
// its requests' contexts, for Cork and ClientGone.
func KeepConn(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, c)
}

// Cork holds back what is written on r's connection until the returned
// uncork runs, so that an answer and what follows it leave together: a
// WebSocket's 101 and its first frames, in one segment and one wake-up
// of the client, instead of two of each. On loopback, where a reconnect
// storm is measured, each segment costs the sending core the receiver's
// TCP work too. Linux also sends a corked connection's data by itself
// after 200 ms, so a missed uncork costs that much, no more. Cork does
// nothing (and uncork is cheap) where the connection was not kept
// (KeepConn), is not TCP underneath its wrappers, or the system has no
// TCP_CORK. uncork may be called more than once, from any goroutine.
func Cork(r *http.Request) (uncork func()) {
	c, _ := r.Context().Value(connKey{}).(net.Conn)
	tc := tcpConn(c)
	if tc == nil || !setCork(tc, true) {
		return func() {}
	}
	var once sync.Once
	return func() { once.Do(func() { setCork(tc, false) }) }
}

// tcpConn returns the TCP connection under c's wrappers (those with a
// NetConn method: TLS, the connection limits), or nil.
func tcpConn(c net.Conn) *net.TCPConn {
	for range 4 {
		switch v := c.(type) {
		case *net.TCPConn:
			return v
		case interface{ NetConn() net.Conn }:
			c = v.NetConn()
		default:
			return nil
		}
	}
	return nil
}
