package httpx

import "net"

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
