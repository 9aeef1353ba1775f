package ws

import (
	"net"
	"net/http"
	"time"

	"github.com/gorilla/websocket"

	"github.com/chatd/chatd/core"
)

// NewConn returns the transport of an upgraded connection, for tests and
// benchmarks that drive Write directly. compress nil: no compression,
// whatever was negotiated.
func NewConn(c *websocket.Conn, user string, appPings bool, compress func(user string) bool) core.Transport {
	ready := make(chan struct{})
	close(ready)
	if compress == nil {
		c.EnableWriteCompression(false)
	}
	return &conn{ready: ready, ws: c, user: user, writeTimeout: 10 * time.Second,
		appPings: appPings, compress: compress, deflate: compress != nil}
}

// Upgrade upgrades as a Handler does, negotiating context takeover when
// the client's offer allows it and up compresses, and returns the
// connection's transport (see NewConn) and whether takeover was
// negotiated.
func Upgrade(up *websocket.Upgrader, w http.ResponseWriter, r *http.Request, user string, compress func(string) bool) (core.Transport, *websocket.Conn, bool, error) {
	offered, takeover := deflateOffer(r)
	ws, tc, slots, err := upgrade(up, w, r, offered && takeover && up.EnableCompression)
	if err != nil {
		return nil, nil, false, err
	}
	c := NewConn(ws, user, false, compress).(*conn)
	c.slots = slots
	if tc != nil {
		c.tk = &takeoverState{conn: tc}
	}
	return c, ws, tc != nil, nil
}

// PreparedState reports how many writers have asked for f's shared form
// so far and whether its websocket.PreparedMessage has been built.
func PreparedState(f core.Frame) (uses int32, built bool) {
	p := f.Shared(preparedKey{}, newPrepared).(*prepared)
	return p.uses.Load(), p.pm != nil
}

// Upgraders returns upgraders configured as a Handler's, accepting any
// origin: plain, and deflating.
func Upgraders() (plain, deflating *websocket.Upgrader) {
	p, d := upgraders(func(*http.Request) bool { return true })
	return &p, &d
}

// Unwrap returns the connection under c, for tests that count its bytes.
func (c *takeoverConn) Unwrap() net.Conn { return c.Conn }

// TakeoverForms reports how many deflated forms of f takeover
// connections share: one per distinct history it was written against.
func TakeoverForms(f core.Frame) int {
	p := f.Shared(preparedKey{}, newPrepared).(*prepared)
	if fs := p.takeovers.Load(); fs != nil {
		return len(*fs)
	}
	return 0
}
