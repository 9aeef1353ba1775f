package httpx

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"
)

// ServeLaneTest attaches lane to srv and serves it on a loopback
// listener until the test ends; it returns the address.
func ServeLaneTest(t *testing.T, lane *Lane, srv *http.Server) string {
	t.Helper()
	lane.Attach(srv)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() { defer close(served); _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		lane.Close(ctx)
		_ = srv.Shutdown(ctx)
		<-served
	})
	return ln.Addr().String()
}

// Layers returns, over the lane's connections now, the most replayConn
// layers between the lane's reader and the socket: 0 or 1.
func (l *Lane) Layers() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	most := 0
	for lc := range l.conns {
		var c net.Conn = lc.nc
		if lc.src != nil {
			c = lc.src
		}
		n := 0
		for {
			r, ok := c.(*replayConn)
			if !ok {
				break
			}
			n++
			c = r.Conn
		}
		most = max(most, n)
	}
	return most
}
