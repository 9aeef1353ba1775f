package ws

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/protocol"
	"github.com/chatd/chatd/transports/httpx"
	"github.com/chatd/chatd/transports/internal/deflate"
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
// server_no_context_takeover nor any server_max_window_bits; browsers
// ask neither), the connection negotiates
// "permessage-deflate; client_no_context_takeover", and its data
// messages, while compression is on, are deflated against the last
// deflate.HistSize bytes of the connection's deflated messages and
// framed by the writer itself. gorilla still does the rest: the upgrade,
// every read (the client deflates each message on its own, as
// client_no_context_takeover asks), control frames, and plain messages.
// A fanned-out message is deflated once for all the connections whose
// history is the same (see window), any other message once for its
// connection; level 1 turns compression off.
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
//
// Under both, gorilla writes through an httpx.SlotConn, also returned,
// so that a writer may keep its slot through the system call (see
// conn.WriteInSlot).
func upgrade(up *websocket.Upgrader, w http.ResponseWriter, r *http.Request, takeover bool) (*websocket.Conn, *takeoverConn, *httpx.SlotConn, error) {
	// Gorilla keeps the hijacked write buffer as the connection's own
	// unless its upgrader sizes or pools its buffers (chatd's do both):
	// only then may a lent one go back to the pool after the upgrade.
	lend := up.WriteBufferPool != nil || up.WriteBufferSize != 0
	hj := &hijacker{ResponseWriter: w, takeover: takeover, lend: lend}
	ws, err := up.Upgrade(hj, r, nil)
	if hj.head != nil {
		hj.head.Reset(nil)
		headWriters.Put(hj.head)
	}
	if err != nil || hj.conn == nil || !hj.conn.negotiated() {
		return ws, nil, hj.slots, err
	}
	return ws, hj.conn, hj.slots, nil
}

// headWriters lend the buffer gorilla writes the 101 in. Gorilla formats
// its answer in the write buffer of the hijacked connection: net/http's
// 4 KiB writer, taken from its pool when the connection was accepted and
// never given back once hijacked, so in a reconnect storm each is new,
// and on a node whose heap is growing its first touch was a page fault,
// 3.5% of the node's CPU. A lent buffer has been touched before, and
// net/http's, never touched, costs no page.
var headWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, headBufferSize) }}

// headBufferSize holds a 101 and its headers (gorilla appends past it
// should one not fit).
const headBufferSize = 512

// hijacker hands gorilla a lent write buffer (headWriters) and, with
// takeover, a takeoverConn in place of the connection it hijacks.
type hijacker struct {
	http.ResponseWriter
	takeover bool
	lend     bool            // lend a write buffer (see upgrade)
	conn     *takeoverConn   // set by Hijack, with takeover
	slots    *httpx.SlotConn // set by Hijack: under conn, if there is one
	head     *bufio.Writer   // set by Hijack when lending, lent until the upgrade returns
}

// Unwrap lets httpx's reporting find its writer under this one: a
// refused upgrade's error reply is counted.
func (h *hijacker) Unwrap() http.ResponseWriter { return h.ResponseWriter }

func (h *hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	h.slots = httpx.NewSlotConn(c)
	c = h.slots
	if h.takeover {
		h.conn = &takeoverConn{Conn: c}
		c = h.conn
	}
	if !h.lend {
		return c, brw, nil
	}
	h.head = headWriters.Get().(*bufio.Writer)
	h.head.Reset(c)
	return c, bufio.NewReadWriter(brw.Reader, h.head), nil
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

// takeoverState is what a takeover connection's writer keeps. Owned by the
// writer, but conn, which the reader writes through too.
type takeoverState struct {
	conn     *takeoverConn
	hist     deflate.History // what the next deflated message may refer to
	win      window          // names hist
	deadline time.Time       // the batch's write deadline
	run      []core.Frame    // writeTakeoverBatch's scratch
	fw       frameWriter     // the frame frameTakeover builds
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

// errDeflate is what frameTakeover returns if deflate's output does not
// end as a sync flush ends, which would be a bug.
var errDeflate = errors.New("ws: deflated message does not end on a sync flush")

// writeTakeoverBatch writes a batch on a takeover connection, in one
// write: a control ping first if the batch holds a heartbeat (unless the
// client asked for ping envelopes); then each fanned-out frame as a
// message of its own, deflated once for every connection whose history
// is the same (see window), as the sessions of a broadcast soon have; and
// each run of other frames (replies, a replay) as one message, the
// envelope itself or a JSON array of them, deflated for this connection.
// Were a broadcast's frames coalesced into arrays here, each connection's
// history would depend on when its writer woke, and no two would match.
func (c *conn) writeTakeoverBatch(frames []core.Frame) error {
	size := 2
	for _, f := range frames {
		size += len(f.Data)/2 + maxFrameHeader + 1
	}
	b := getBuffer(size)
	defer putBuffer(b)
	out, sent := (*b)[:0], false
	if !c.appPings && slices.ContainsFunc(frames, func(f core.Frame) bool { return f.Type == protocol.TypePing }) {
		out = append(out, 0x80|websocket.PingMessage, 0) // an empty ping control frame
	}
	run := c.tk.run[:0] // consecutive frames that nothing shares
	var err error
	for _, f := range frames {
		switch {
		case f.Type == protocol.TypePing && !c.appPings:
		case !f.IsShared():
			run = append(run, f)
		default:
			if len(run) > 0 {
				if out, err = c.appendRun(out, run); err != nil {
					return err
				}
				run = run[:0]
			}
			frame, err := c.sharedTakeover(f.Shared(preparedKey{}, newPrepared).(*prepared), f.Data)
			if err != nil {
				return err
			}
			out, sent = append(out, frame...), true
		}
	}
	if len(run) > 0 {
		if out, err = c.appendRun(out, run); err != nil {
			return err
		}
		sent = true
	}
	clear(run) // keep no frame's bytes past the write
	c.tk.run, *b = run[:0], out
	if !sent {
		c.releaseHistory() // idle: hold no history until the next message
	}
	if len(out) == 0 {
		return nil
	}
	return c.tk.conn.writeFrame(out, c.tk.deadline)
}

// appendRun appends run, frames nothing shares, as one deflated message:
// the envelope itself, or a JSON array of them.
func (c *conn) appendRun(out []byte, run []core.Frame) ([]byte, error) {
	msg := run[0].Data
	if len(run) > 1 {
		arr, a := c.array(run, len(run)) // a run holds no control ping
		defer putBuffer(arr)
		msg = a
	}
	base := len(out)
	out, start, err := c.frameTakeover(out, msg)
	if err != nil {
		return out, err
	}
	c.tk.win.push(msgIDs.Add(1), len(msg))
	return append(out[:base], out[start:]...), nil // close up the header's unused room
}

// sharedTakeover returns a fanned-out frame's data as a deflated frame
// against the connection's history: the form another connection with
// the same history made, or a new one, kept for the next.
func (c *conn) sharedTakeover(p *prepared, data []byte) ([]byte, error) {
	if frame := p.takeover(&c.tk.win); frame != nil {
		c.tk.hist.Remember(data)
		c.tk.win.push(p.id, len(data))
		return frame, nil
	}
	out, start, err := c.frameTakeover(make([]byte, 0, maxFrameHeader+len(data)/2+64), data)
	if err != nil {
		return nil, err
	}
	frame := out[start:]
	p.keepTakeover(&c.tk.win, frame)
	c.tk.win.push(p.id, len(data))
	return frame, nil
}

// frameTakeover appends to dst a text frame of msg deflated against the
// history, and adds msg to the history. The frame is out[start:]: room
// for the longest header is made ahead of the payload, and the header
// takes the end of it.
func (c *conn) frameTakeover(dst, msg []byte) (out []byte, start int, err error) {
	base := len(dst)
	c.tk.fw.b = append(dst, make([]byte, maxFrameHeader)...)
	c.tk.hist.Deflate(&c.tk.fw, msg)
	out, c.tk.fw.b = c.tk.fw.b, nil
	if !bytes.HasSuffix(out, syncTail) {
		return out, 0, errDeflate
	}
	out = out[:len(out)-len(syncTail)]
	n := len(out) - base - maxFrameHeader
	start = base + maxFrameHeader - 2
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
	return out, start, nil
}

// msgIDs numbers the messages takeover connections deflate: a shared
// frame's number is its prepared's, any other message takes one of its
// own.
var msgIDs atomic.Uint64

// window names a takeover connection's history: the numbers of the
// messages whose bytes it holds, oldest first, and their lengths. The
// history is the last deflate.HistSize bytes of those messages, so two
// connections with equal windows have the same history, and a message
// deflated against one is the same bytes against the other. Owned by the
// connection's writer.
type window struct {
	ids  []uint64
	lens []int
	size int // the sum of lens
}

// push adds a message of n bytes, and lets go of the oldest ones the
// history no longer reaches.
func (w *window) push(id uint64, n int) {
	w.ids, w.lens, w.size = append(w.ids, id), append(w.lens, n), w.size+n
	drop := 0
	for drop < len(w.ids)-1 && w.size-w.lens[drop] >= deflate.HistSize {
		w.size -= w.lens[drop]
		drop++
	}
	if drop > 0 {
		w.ids = w.ids[:copy(w.ids, w.ids[drop:])]
		w.lens = w.lens[:copy(w.lens, w.lens[drop:])]
	}
}

// reset empties the window, with the history.
func (w *window) reset() { w.ids, w.lens, w.size = w.ids[:0], w.lens[:0], 0 }

// equal reports whether w names the same history as ids and size.
func (w *window) equal(ids []uint64, size int) bool {
	return w.size == size && slices.Equal(w.ids, ids)
}

// takeoverFrame is a shared frame deflated against one history.
type takeoverFrame struct {
	ids   []uint64 // the window it was deflated against; static
	size  int
	frame []byte // as on the wire, header included; shared, read only
}

// maxTakeoverFrames bounds the histories a shared frame keeps its
// deflated form for: the sessions of one broadcast fall into a few.
const maxTakeoverFrames = 4

// takeover returns the frame deflated against w's history, or nil.
func (p *prepared) takeover(w *window) []byte {
	if fs := p.takeovers.Load(); fs != nil {
		for _, f := range *fs {
			if w.equal(f.ids, f.size) {
				return f.frame
			}
		}
	}
	return nil
}

// keepTakeover keeps frame, deflated against w's history, for the
// connections with the same history, in place of the oldest kept.
func (p *prepared) keepTakeover(w *window, frame []byte) {
	f := &takeoverFrame{ids: slices.Clone(w.ids), size: w.size, frame: frame}
	for {
		old := p.takeovers.Load()
		var fs []*takeoverFrame
		if old != nil {
			fs = *old
		}
		if len(fs) >= maxTakeoverFrames {
			fs = fs[1:]
		}
		next := append(slices.Clone(fs), f)
		if p.takeovers.CompareAndSwap(old, &next) {
			return
		}
	}
}
