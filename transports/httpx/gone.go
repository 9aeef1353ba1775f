package httpx

import (
	"net"
	"net/http"
)

// StatusClientGone is the status of a request left unserved because its
// client had gone (ClientGone), as nginx logs it. The access log shows
// it; a client sees it only if it had shut just its writing side.
const StatusClientGone = 499

// ClientGone reports whether the client that sent r has closed its
// connection already: r's context has ended, or the connection (kept in
// the context by KeepConn, or by a Lane) has the client's end of stream,
// or a reset, waiting with no unread byte before it in the socket. It
// reads nothing: a peek that does not wait, one system call. False
// where it cannot tell (no connection kept, not TCP underneath its
// wrappers, a system without the peek) and where something is still
// unread (a TLS client's close alert).
//
// A client that stops a request and then sends another on a new
// connection (a poll stopped so that a room can be left) can have the
// second served first: a server reads the requests of different
// connections in no set order. The first then comes from a client that
// is gone, and on a direct connection its close has arrived by the time
// the first is read, since the client closed before it sent the second.
// A handler that takes the hub's join fence before it asks
// (core.SessionOptions.Fence) closes the race on such a connection: a
// leave served after the fence wins over the request's joins. It stays
// open where the close comes late (a close lost and sent again, a proxy
// that closes its side late, a TLS close alert) or where the request
// goes to another node.
func ClientGone(r *http.Request) bool {
	if r.Context().Err() != nil {
		return true
	}
	c, _ := r.Context().Value(connKey{}).(net.Conn)
	tc := tcpConn(c)
	return tc != nil && peerClosed(tc)
}
