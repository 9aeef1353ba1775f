package httpx

import (
	"net"
	"net/http"

	"github.com/chatd/chatd/core"
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
// Arrived, which takes the hub's join fence before it asks
// (core.SessionOptions.Fence), closes the race on such a connection: a
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

// Arrived is what a request that opens a stream (a WebSocket upgrade, an
// SSE stream, a poll that opens a session) asks before it joins rooms:
// it takes hub's join fence for the request's joins
// (core.SessionOptions.Fence), then reports whether the client is still
// there (ClientGone). In that order: a client that stopped the request
// and then left a room on another connection has either closed before
// the check, and the request must join nothing (ok false; answer
// StatusClientGone), or left after the fence, and the leave wins over
// the request's joins.
func Arrived(r *http.Request, hub *core.Hub) (fence core.JoinFence, ok bool) {
	fence = hub.JoinFence()
	return fence, !ClientGone(r)
}
