package poll

import (
	"errors"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/transports/httpx"
)

// answerTimeout bounds the write of a parked poll's answer.
const answerTimeout = 10 * time.Second

// parked is a held poll that has waited Config.Park with no news and
// whose connection the handler has taken over from net/http: its request
// goroutine, net/http's background reader and the connection's buffers
// are gone, and what is left is the session, this struct, a timer for
// the rest of the hold and a reader goroutine with a minimal stack that
// notices the client going away. The answer is written by whoever ends
// the poll: news (conn.Write, on the session's writer goroutine), the
// hold's end (its timer) or the session's end (conn.Close). With a Lane
// (Config.Lane) the connection goes on: the watcher stops reading and
// hands it to the lane, which serves the client's next polls on it, so a
// quiet room's parked clients do not all reconnect at its next message.
// Without one the answer says Connection: close, since the connection
// cannot go back to net/http, and the client's next poll opens a new
// connection; either way it may carry on with the same session (see
// keeper).
type parked struct {
	h        *Handler    // Static after construction.
	c        *conn       // Static after construction.
	nc       net.Conn    // Static after construction.
	pos      position    // the poll's identity, rooms and cursor; static after construction.
	gzip     bool        // the client accepts gzip and Compress is set; static after construction.
	zmode    deflateMode // the poll's deflate=; static after construction.
	known    uint64      // the tag of the control the client has (controlTag); static after construction.
	keepable bool        // the session may be kept for the next poll; static after construction.
	header   []byte      // the middleware's headers, in wire form; static after construction.
	hold     *time.Timer // answers when the hold is over; set before the poll is parked.
	done     atomic.Bool // the answer has begun
	gone     atomic.Bool // the client closed the connection
	// lane takes the connection over once the answer is written, for the
	// client's next polls; nil: the answer closes it. Static after
	// construction.
	lane    *httpx.Lane
	handoff atomic.Int32 // watching, handing or unwatched
	// pending is what watch read from the client, its next request, to
	// go first on the lane; owned by watch. overflow: the client sent
	// more than maxPending since the poll parked (flooded).
	pending  []byte
	overflow atomic.Bool // read by answer, which then closes the connection
}

// A parked poll's connection, as the answer and watch agree on it.
const (
	watching  int32 = iota // watch reads it
	handing                // the answer is written: watch hands it to the lane
	unwatched              // watch has returned: the answer closes it
)

// maxPending bounds what a parked poll's client may send while it waits
// (a poll's request, not a stream): the watch keeps it for the lane, and
// past it the poll answers at once and the connection closes (flooded).
const maxPending = 8 << 10

// park takes the connection over from net/http, if it can (HTTP/1 only),
// and hands the poll of pos to c, so that ServeHTTP may return while the
// session waits out the rest of the hold, left. It reports whether it
// did; then the poll no longer owns the session: its answer, written here
// if news came meanwhile, keeps or closes it.
func (h *Handler) park(w http.ResponseWriter, r *http.Request, c *conn, pos position, keepable bool, left time.Duration) bool {
	if r.ProtoMajor != 1 || left <= 0 {
		return false
	}
	header := &httpx.SliceWriter{}
	_ = w.Header().Write(header) // SliceWriter never fails
	nc, rw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return false
	}
	lane := h.cfg.Lane
	if lane != nil && !lane.Adoptable(r) {
		lane = nil
	}
	if n := rw.Reader.Buffered(); n > 0 {
		// A pipelined request is in net/http's buffer and cannot be handed
		// back: it is dropped with the connection, and the client retries.
		_, _ = rw.Reader.Discard(n)
		lane = nil
	}
	// A parked client is quiet: its session's deflated stream goes (2
	// KiB less while it waits), and its answer starts a new one.
	c.z.drop()
	p := &parked{h: h, c: c, nc: nc, pos: pos, gzip: h.cfg.Compress != nil && acceptsGzip(r), zmode: deflateOf(r),
		known: controlTag(r), keepable: keepable, header: header.B, lane: lane}
	// The timer may fire before the poll is parked: unpark then finds
	// nothing to take back, and parkWith answers.
	p.hold = time.AfterFunc(left, p.expire)
	if frames, now := c.parkWith(p); now {
		p.end(frames)
		if p.handoff.Load() == handing {
			go p.watch() // it hands the connection to the lane at once
		}
		return true
	}
	h.parks.Add(1)
	go p.watch()
	return true
}

// expire answers with no events when the hold is over, unless news came
// first.
func (p *parked) expire() {
	if frames, ok := p.c.unpark(p); ok {
		p.end(frames)
	}
}

// end answers and closes the session unless the answer kept it.
func (p *parked) end(frames *[]core.Frame) {
	if !p.answer(frames, true) {
		p.c.sess.Close(core.DisconnectNormal)
	}
}

// watch reads the connection until it closes: the client went away, or
// the answer has been written. A client going away before its answer
// ends the session.
func (p *parked) watch() {
	var buf [64]byte
	read := 0 // what the client has sent since the poll parked
	for {
		n, err := p.nc.Read(buf[:])
		if n > 0 {
			read += n
			switch {
			case read > maxPending:
				p.flooded()
			case p.lane != nil: // without a lane nothing is kept, as before
				p.pending = append(p.pending, buf[:n]...)
			}
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) && p.handoff.Load() == handing {
				p.handOver()
				return
			}
			break
		}
	}
	if !p.handoff.CompareAndSwap(watching, unwatched) {
		// The answer went out and the client closed the connection
		// before it could go to the lane.
		p.nc.Close()
	}
	p.gone.Store(true)
	if !p.done.Load() {
		p.c.sess.Close(core.DisconnectNormal)
	}
}

// flooded ends the poll of a client that has sent more than a request's
// worth (maxPending) since it parked, lane or not: the poll answers at
// once with what it has, and the answer closes the connection, as a
// full hold's would. What the client sends is read here 64 bytes at a
// time (the reader keeps a minimal stack): read to the hold's end, a
// flood cost the node a system call every 64 bytes (a client sending
// 190 MB a second kept a core busy); now it costs at most maxPending
// bytes read, and TCP holds the rest back until the close. The
// client's session is kept as after any answer: its next poll resumes
// from the answer's cursor.
func (p *parked) flooded() {
	p.pending = nil
	if p.overflow.Swap(true) {
		return
	}
	p.h.overflows.Add(1)
	if frames, ok := p.c.unpark(p); ok {
		p.end(frames)
	}
	// Otherwise the answer is under way: it closes the connection, or
	// handOver does, seeing the overflow.
}

// handOver gives the connection to the lane, with what the client sent
// after its parked request, once the answer is written; watch calls it
// when the answer has stopped its read.
func (p *parked) handOver() {
	_ = p.nc.SetReadDeadline(time.Time{})
	if p.overflow.Load() || !p.lane.Adopt(p.nc, p.pending) {
		p.nc.Close()
	}
	p.pending = nil
}

// answer writes the poll's answer with frames, in one write, and gives
// the frames back. With a lane, the connection then goes to it for the
// client's next polls (watch hands it over); without one, or if the
// client is gone, the answer closes it. With keep, it first offers the
// session to the keeper for the client's next poll, and reports whether
// the keeper took it; if not, the caller ends the session. Called once,
// by whoever took the answer over from c.
func (p *parked) answer(frames *[]core.Frame, keep bool) (kept bool) {
	p.done.Store(true)
	p.hold.Stop()
	handed := false
	defer func() {
		if !handed {
			p.nc.Close()
		}
	}()
	defer releaseFrames(frames)
	if p.gone.Load() {
		return false
	}
	next := httpx.Advance(p.pos.cur, p.pos.rooms, framesOf(frames))
	enc := next.Encode()
	a := p.h.buildAnswer(p.pos.id.User, framesOf(frames), enc, p.gzip, p.known, p.zmode, &p.c.z, p.zmode != deflateOff && moved(p.pos.cur, next)) // before the keeper has c
	defer a.release()
	kept = keep && p.keepable &&
		p.h.keep.put(p.c, position{id: p.pos.id, client: p.pos.client, rooms: p.pos.rooms, cur: next, query: p.pos.query, cursor: enc})
	msg := getBody(256 + len(p.header) + len(a.out))
	defer putBody(msg)
	// The connection goes on for a client that goes on (keep: not at the
	// session's end, a node draining, whose clients should reconnect),
	// while the lane is open and the client has not flooded it.
	keepAlive := keep && p.lane != nil && p.lane.Open() && !p.overflow.Load()
	now := time.Now()
	*msg = append(appendHead(*msg, p.header, a, keepAlive, now), a.out...)
	_ = p.nc.SetWriteDeadline(now.Add(answerTimeout))
	if _, err := p.nc.Write(*msg); err == nil {
		p.c.sess.Delivered(framesOf(frames))
		// watch is reading: it stops at once and hands the connection over
		// (unless it has returned: the client is gone).
		if keepAlive && p.handoff.CompareAndSwap(watching, handing) {
			handed = true
			_ = p.nc.SetWriteDeadline(time.Time{})
			_ = p.nc.SetReadDeadline(time.Unix(1, 0))
		}
	}
	return kept
}

// appendHead appends a 200 response head for a to b: the middleware's
// headers (in wire form), the answer's, and Connection: close unless the
// connection goes on (keepAlive), dated now.
func appendHead(b, header []byte, a answer, keepAlive bool, now time.Time) []byte {
	b = append(b, "HTTP/1.1 200 OK\r\n"...)
	b = append(b, header...)
	if a.deflated {
		b = append(b, "Content-Type: application/octet-stream\r\nCache-Control: no-store\r\n"...)
	} else {
		b = append(b, "Content-Type: application/json\r\nCache-Control: no-store\r\n"...)
	}
	if a.gzipped {
		b = append(b, "Content-Encoding: gzip\r\nVary: Accept-Encoding\r\n"...)
	}
	b = httpx.AppendDate(b, now)
	b = append(b, "Content-Length: "...)
	b = strconv.AppendInt(b, int64(len(a.out)), 10)
	if keepAlive {
		return append(b, "\r\n\r\n"...)
	}
	return append(b, "\r\nConnection: close\r\n\r\n"...)
}
