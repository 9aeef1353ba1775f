package transporttest

import (
	"context"
	"net"
	"sync/atomic"

	"github.com/gorilla/websocket"

	"github.com/chatd/chatd/transports/wsinflate"
)

// TakeoverStats counts what connections of a TakeoverDialer saw.
type TakeoverStats struct {
	wsinflate.Stats
	Read atomic.Int64 // bytes read off the wire, handshake included
}

// TakeoverDialer returns a dialer whose connections negotiate
// permessage-deflate as a browser does, letting the server keep its
// compression context from message to message (see wsinflate).
func TakeoverDialer(s *TakeoverStats) *websocket.Dialer {
	return wsinflate.Dialer(&websocket.Dialer{
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &countedReads{Conn: c, n: &s.Read}, nil
		}}, &s.Stats)
}

// countedReads counts the bytes read from a connection.
type countedReads struct {
	net.Conn
	n *atomic.Int64
}

func (c *countedReads) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}
