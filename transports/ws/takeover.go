package ws

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// Context takeover. gorilla negotiates permessage-deflate only without
// context takeover, so each message is deflated on its own: a lone chat
// message of about 250 bytes shrinks 1.3-1.5×, since there is little in
// one message for deflate to refer back to. With context takeover the
// client keeps its inflater's window from one message to the next, and
// the server may deflate each message against what it sent before, as
// the SSE tier's gzip stream does (3.1-3.3× for the same stream).
//
// So when the client allows it (its offer asks neither
// server_no_context_takeover nor a smaller server_max_window_bits;
// browsers ask neither), the connection negotiates
// "permessage-deflate; client_no_context_takeover", and its data
// messages, while compression is on, are deflated against the last
// deflate.HistSize bytes of the connection's deflated messages and
// framed by the writer itself. gorilla still does the rest: the upgrade,
// every read (the client deflates each message on its own, as
// client_no_context_takeover asks), control frames, and plain messages.
// The cost is a deflate per message per connection instead of one per
// broadcast, which is why level 1 turns compression off.
//
// takeoverConn sits under the gorilla connection. It changes the
// extension gorilla writes in its 101 answer, and it serialises gorilla's
// writes (a pong the reader sends) with the frames the writer sends
// itself, each under its own write deadline.

// gorillaExtension is the extension gorilla's 101 answer carries when it
// negotiates compression, and takeoverExtension what a takeover
// connection answers instead.
const (
	gorillaExtension  = "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover\r\n"
	takeoverExtension = "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover\r\n"
)

// takeoverConn is a hijacked connection whose writes the server's frames
// share. Its methods are safe for concurrent use.
type takeoverConn struct {
	net.Conn
	mu       sync.Mutex
	deadline time.Time // the last deadline gorilla set; guarded by mu
	answered bool      // the 101 answer has been written; guarded by mu
	takeover bool      // the answer negotiated context takeover; set with answered
}

// SetWriteDeadline keeps gorilla's deadline for gorilla's next write, so
// that a frame the writer sends meanwhile keeps its own.
func (c *takeoverConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	c.deadline = t
	c.mu.Unlock()
	return nil
}

// SetDeadline sets both deadlines, as net.Conn's does.
func (c *takeoverConn) SetDeadline(t time.Time) error {
	_ = c.SetWriteDeadline(t)
	return c.Conn.SetReadDeadline(t)
}

// Write is gorilla's write: the 101 answer first, with the extension
// changed, then whole frames (gorilla writes each control frame, and
// each frame header with its payload, under its own lock, in order).
func (c *takeoverConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := p
	if !c.answered {
		c.answered = true
		if i := bytes.Index(p, []byte(gorillaExtension)); i >= 0 {
			out = make([]byte, 0, len(p))
			out = append(append(append(out, p[:i]...), takeoverExtension...), p[i+len(gorillaExtension):]...)
			c.takeover = true
		}
	}
	if err := c.Conn.SetWriteDeadline(c.deadline); err != nil {
		return 0, err
	}
	if _, err := c.Conn.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// writeFrame writes one whole frame the writer built, under deadline.
func (c *takeoverConn) writeFrame(frame []byte, deadline time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.Conn.SetWriteDeadline(deadline); err != nil {
		return err
	}
	_, err := c.Conn.Write(frame)
	return err
}

// negotiated reports whether the 101 answer negotiated context takeover.
func (c *takeoverConn) negotiated() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.takeover
}

// CloseWrite shuts the write side, as conn.Close asks of a TCP connection.
func (c *takeoverConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// upgrade upgrades r with up. With takeover (up negotiates compression
// and the client's offer allows context takeover) gorilla's connection
// sits on a takeoverConn, returned if the answer negotiated it.
func upgrade(up *websocket.Upgrader, w http.ResponseWriter, r *http.Request, takeover bool) (*websocket.Conn, *takeoverConn, error) {
	if !takeover {
		ws, err := up.Upgrade(w, r, nil)
		return ws, nil, err
	}
	hj := &hijacker{ResponseWriter: w}
	ws, err := up.Upgrade(hj, r, nil)
	if err != nil || hj.conn == nil || !hj.conn.negotiated() {
		return ws, nil, err
	}
	return ws, hj.conn, nil
}

// hijacker hands gorilla a takeoverConn in place of the connection it
// hijacks.
type hijacker struct {
	http.ResponseWriter
	conn *takeoverConn // set by Hijack
}

func (h *hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	h.conn = &takeoverConn{Conn: c}
	return h.conn, brw, nil
}

// deflateOffer reads the client's first permessage-deflate offer, the one
// gorilla accepts: whether there is one, and whether it lets the server
// keep its compression context (no server_no_context_takeover, and no
// server_max_window_bits, which would bound how far back the server's
// messages may refer; browsers send neither).
func deflateOffer(r *http.Request) (offered, takeover bool) {
	for _, v := range r.Header.Values("Sec-Websocket-Extensions") {
		for ext := range strings.SplitSeq(v, ",") {
			name, params, _ := strings.Cut(ext, ";")
			if strings.TrimSpace(name) != "permessage-deflate" {
				continue
			}
			for p := range strings.SplitSeq(params, ";") {
				k, _, _ := strings.Cut(p, "=")
				switch strings.ToLower(strings.TrimSpace(k)) {
				case "server_no_context_takeover", "server_max_window_bits":
					return true, false
				}
			}
			return true, true
		}
	}
	return false, false
}

// maxFrameHeader is the longest header of a frame the server sends.
const maxFrameHeader = 10

// syncTail ends every deflated message; RFC 7692 leaves it off the wire.
var syncTail = []byte{0, 0, 0xff, 0xff}

// frameWriter appends what deflate writes to the frame being built.
type frameWriter struct{ b []byte }

func (w *frameWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// errDeflate is what writeTakeover returns if deflate's output does not
// end as a sync flush ends, which would be a bug.
var errDeflate = errors.New("ws: deflated message does not end on a sync flush")

// writeTakeover writes msg as one text message, deflated against what
// the connection deflated before, in one frame and one write.
func (c *conn) writeTakeover(msg []byte) error {
	b := getBuffer(maxFrameHeader + len(msg)/2 + 64)
	defer putBuffer(b)
	c.fw.b = append((*b)[:0], make([]byte, maxFrameHeader)...)
	c.hist.Deflate(&c.fw, msg)
	out := c.fw.b
	c.fw.b = nil
	*b = out
	if !bytes.HasSuffix(out, syncTail) {
		return errDeflate
	}
	out = out[:len(out)-len(syncTail)]
	n := len(out) - maxFrameHeader
	start := maxFrameHeader - 2
	switch {
	case n <= 125:
		out[start+1] = byte(n)
	case n <= 0xffff:
		start -= 2
		out[start+1] = 126
		binary.BigEndian.PutUint16(out[start+2:], uint16(n))
	default:
		start -= 8
		out[start+1] = 127
		binary.BigEndian.PutUint64(out[start+2:], uint64(n))
	}
	out[start] = 0x80 | 0x40 | websocket.TextMessage // FIN, RSV1 (deflated), text
	return c.tc.writeFrame(out[start:], c.deadline)
}
