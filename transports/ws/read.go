package ws

import (
	"context"
	"errors"
	"io"
	"net"
	"time"
	"unsafe"

	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/protocol"
)

// controlWait bounds the pong written in answer to a client's ping; it
// runs on the reader, which must not wait long behind the writer.
const controlWait = time.Second

// closeLinger bounds how long a closed connection waits for the client's
// close frame (or its FIN) before the socket is torn down. A slow
// consumer closed 4008 must first read the backlog still in the socket
// buffers (hundreds of KiB on a slow link) to reach the close frame, and
// any frame it sends meanwhile (the pong to a ping in that backlog) would
// reset a socket already closed, losing the backlog and the close code.
// So the wait is seconds, not one: it costs a closing connection's
// descriptor and reader for at most that long.
const closeLinger = 5 * time.Second

// reader is a connection's read side. Its fields but next and err are
// static after construction; its goroutine is the only one that reads
// ws, and the one that closes the socket, once reading is over (see
// conn.Close).
type reader struct {
	sess    *core.Session
	c       *conn
	ws      *websocket.Conn
	ctx     context.Context // the session's
	silence time.Duration   // three heartbeats
	h       *Handler        // its readLimit bounds a message, inflated; static after construction
	// taken counts the bytes of the frames read until the connection has
	// sent its Handler's readBurst; from then on inbound bounds them
	// (made then, so that a connection that never sends that much never
	// has one). Only the reader's goroutine touches them.
	taken   int
	inbound *rate.Limiter
	// meter charges the read rate as the socket is read (frameMeter):
	// every frame, control frames included, as it arrives.
	meter frameMeter

	// What NextReader returned, from read to handle; only the reader's
	// goroutine touches them.
	next io.Reader
	err  error

	work    *workers      // where frames are handled; static after construction
	data    []byte        // the frame a worker handles; the worker's from handle until handled
	handled chan struct{} // a worker says the frame is handled; buffered 1, static after construction
}

// startReader arms the silence deadline and starts the reader. Every
// frame the client sends — a message, a ping, or a pong answering the
// server's heartbeat — pushes the deadline out by three heartbeats; when
// it passes, the session is closed with 4009.
func (h *Handler) startReader(sess *core.Session, c *conn, rooms []string, since protocol.Cursor) {
	rd := &reader{sess: sess, c: c, ws: c.ws, ctx: sess.Context(), silence: 3 * h.hub.Config().Heartbeat,
		h: h, work: h.workers, handled: make(chan struct{}, 1)}
	if h.readRate != rate.Inf {
		// The upgrade always puts a SlotConn under gorilla's connection.
		rd.meter.rd = rd
		c.slots.Meter(&rd.meter)
	}
	rd.extend()
	c.ws.SetPongHandler(rd.pong)
	c.ws.SetPingHandler(rd.ping)
	// The user's own stream, before any client frame: live, or from the
	// position since= gives it. A client that resumes it later joins "~"
	// with since, which restarts it from there. Then the rooms the request
	// joins (rooms=), each as its join envelope would. All of it runs
	// here, on the request's goroutine, which is about to end anyway, so
	// that the reader starts with a small stack. The session is held
	// (core.SessionOptions.Hold) until they are done, so the greeting and
	// the joined replies leave in one write, with the 101 (httpx.Cork);
	// if nothing is queued, no write is coming, and the 101 goes now.
	defer func() {
		if p := recover(); p != nil {
			// The connection is hijacked: nothing else would end a
			// session left held, with its 101 corked, nor close the
			// socket (the reader does, once the close frame is out).
			sess.Close(core.Disconnect{Code: protocol.CloseInternal, Reason: "internal error"})
			c.flushCork()
			go rd.read()
			panic(p)
		}
	}()
	if p, ok := since[protocol.UserRoom]; ok {
		sess.JoinRequested(rd.ctx, protocol.UserRoom, &p)
	} else {
		_ = sess.Join(rd.ctx, protocol.UserRoom, nil, true) // without it the session still serves its rooms
	}
	for _, room := range rooms {
		var from *uint64
		if p, ok := since[room]; ok {
			from = &p
		}
		sess.JoinRequested(rd.ctx, room, from)
	}
	if !sess.Release() {
		c.flushCork() // no write is coming to take the 101 along
	}
	go rd.read()
}

// read reads client frames and hands them to the session until the
// connection fails or the session closes, then closes the socket.
//
// Stacks. Go starts a goroutine with a 2 KiB stack (chatd's setting; by
// default the average its goroutines use, rounded up), grows it by
// copying, and shrinks a parked one only while less than a quarter of it
// is used, counting 800 bytes of guard: a stack that has grown never
// comes back below 4 KiB (a parked reader needs 2 KiB at most). Handling
// a frame (a join that reads history, a send that waits for the disk)
// needs 8 KiB or more. So:
//   - the reader parks through NextReader from this small frame, which
//     keeps the parked depth at about 1.1 KiB, under what a 2 KiB stack
//     holds without growing;
//   - frames are read in handle, below it, and handled by a worker
//     (workers), whose grown stack serves frame after frame;
//   - should reading a frame still move the stack (it grew, so the
//     address of a local changed), a new reader goroutine with a fresh
//     stack reads on and this one ends, so that an idle connection's
//     reader holds the smallest stack Go gives out (docs/DESIGN.md, "The
//     reader's stack").
//
// After the server's close frame (conn.Close) it goes on reading, without
// handing frames to the session, until the client's close frame, its FIN
// or closeLinger: closing a socket with unread data in it makes the kernel
// send a reset, and a reset can make the client drop what it had not read
// yet, the close frame included, so that it sees 1006 instead of the code.
func (rd *reader) read() {
	var mark byte
	at := uintptr(unsafe.Pointer(&mark)) // where this goroutine's stack is
	for {
		_, rd.next, rd.err = rd.ws.NextReader()
		if !rd.handle() {
			return
		}
		if uintptr(unsafe.Pointer(&mark)) != at { // the stack grew (or shrank) and moved
			go rd.read()
			return
		}
	}
}

// handle reads the message NextReader returned (rd.next, or its error
// rd.err) and has a worker hand it to the session; after a read error it
// closes the session and the socket and reports false. It is a function
// of its own, and takes no arguments, so that neither its frame nor
// spill space for its arguments is on the parked reader's stack.
//
//go:noinline
func (rd *reader) handle() bool {
	r, err := rd.next, rd.err
	rd.next, rd.err = nil, nil
	var b *[]byte
	if err == nil {
		b, err = readFrame(r, rd.h.readLimit)
	}
	if err == nil {
		if rd.c.deflate {
			// The meter counted its bytes on the wire: inflating counts too.
			if err = rd.throttle(len(*b)); err != nil {
				putBuffer(b)
			}
		}
	}
	if err != nil {
		rd.sess.Close(readDisconnect(err))
		rd.finish()
		return false
	}
	defer putBuffer(b)
	if rd.c.closing.Load() {
		return true
	}
	rd.extend()
	rd.work.handle(rd, *b) // handled when it returns: the session keeps no part of it
	return true
}

// readFrame reads a message to its end into a pooled buffer (the batch
// arrays' pool): one allocation a frame saved, a tenth of a node's in
// chat at 10,000 users. A message longer than limit fails with
// websocket.ErrReadLimit once limit+1 bytes are in: gorilla's read limit
// counts the bytes on the wire, and a compressed frame (permessage-
// deflate) of 63 KB inflated to 62 MiB, which the server read whole (8
// GB of memory at its peak for one frame, seconds of every other
// client's latency).
func readFrame(r io.Reader, limit int64) (*[]byte, error) {
	b := getBuffer(512)
	buf := *b
	for {
		if int64(len(buf)) > limit {
			*b = buf
			putBuffer(b)
			return nil, websocket.ErrReadLimit
		}
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		end := cap(buf)
		if room := limit + 1 - int64(len(buf)); int64(end-len(buf)) > room {
			end = len(buf) + int(room)
		}
		n, err := r.Read(buf[len(buf):end])
		buf = buf[:len(buf)+n]
		if err != nil {
			*b = buf
			if err == io.EOF {
				return b, nil
			}
			putBuffer(b)
			return nil, err
		}
	}
}

// frameCost is what a frame counts against the read rate beyond its
// bytes: handling one costs the node about as much as half a KiB of
// payload, so that a flood of tiny frames or pings (which the read rate
// did not count) is held back too.
const frameCost = 512

// pingCost is what a ping counts beyond frameCost: the node answers each
// with a pong, a write of its own.
// Charged like any frame, 20 connections of one user sending empty pings
// took a quarter of the node's core (a review, 7 December); no client of
// chatd sends ping frames (browsers cannot; the Go client and gorilla's
// answer the server's pings with pongs).
const pingCost = 8 << 10

// frameMeter charges a connection's read rate for what it sends, as its
// socket is read: every byte, and frameCost more for every frame begun.
// gorilla reads a message's frames inside one Read, so no charge by
// message saw the frames of one that never ends: a client that sent
// empty continuation frames as fast as it could (6 bytes each, 168
// million in 5 s) took a core of the node for as long as it went on. It
// follows the frames' headers through the bytes (RFC 6455, section 5.2)
// and skips their payloads. Only the reader's goroutine reads the
// socket, so only it touches the meter.
type frameMeter struct {
	rd   *reader
	p    []byte // the buffer of the read in progress
	skip uint64 // the current frame's payload still to come
	plen uint64 // its payload length, as its header gives it
	hn   uint8  // its header's bytes seen; 0: the next byte begins a frame
	want uint8  // its header's length, once its second byte is seen
	ext  uint8  // its extended length's bytes: 0, 2 or 8
}

// Reading takes the buffer of the read that follows.
func (m *frameMeter) Reading(p []byte) { m.p = p }

// Read charges what the read gave, waiting while the connection is past
// its rate; it fails the read if the session ends meanwhile.
func (m *frameMeter) Read(n int, err error) (int, error) {
	if n > 0 {
		begun, pings := m.frames(m.p[:n])
		cost := n + begun*frameCost + pings*pingCost
		if werr := m.rd.throttle(cost); werr != nil && err == nil {
			err = werr
		}
	}
	m.p = nil
	return n, err
}

// frames follows the frames through p, the next bytes of the stream, and
// returns how many begin in it, and how many of those are pings.
func (m *frameMeter) frames(p []byte) (begun, pings int) {
	for len(p) > 0 {
		if m.skip > 0 {
			k := min(m.skip, uint64(len(p)))
			m.skip -= k
			p = p[k:]
			continue
		}
		b := p[0]
		p = p[1:]
		m.hn++
		switch {
		case m.hn == 1:
			begun++
			if b&0x0f == 0x9 { // the opcode of a ping
				pings++
			}
			continue
		case m.hn == 2:
			m.plen, m.ext = uint64(b&0x7f), 0
			switch m.plen {
			case 126:
				m.plen, m.ext = 0, 2
			case 127:
				m.plen, m.ext = 0, 8
			}
			m.want = 2 + m.ext
			if b&0x80 != 0 {
				m.want += 4 // the masking key
			}
		case m.hn <= 2+m.ext:
			m.plen = m.plen<<8 | uint64(b)
		}
		if m.hn == m.want {
			m.skip, m.hn = m.plen, 0
		}
	}
	return begun, pings
}

// throttle holds the reader back while the connection sends faster than
// its Handler's read rate (once it has sent its burst): it waits, before
// it takes the frame of n bytes, until the rate allows it, or fails when
// the session ends.
func (rd *reader) throttle(n int) error {
	if rd.inbound == nil {
		if rd.h.readRate == rate.Inf {
			return nil
		}
		if rd.taken += n; rd.taken <= rd.h.readBurst {
			return nil
		}
		rd.inbound = rate.NewLimiter(rd.h.readRate, rd.h.readBurst)
		rd.inbound.AllowN(time.Now(), rd.h.readBurst) // the burst is spent
	}
	if rd.inbound.AllowN(time.Now(), n) {
		return nil
	}
	rd.h.throttled.Inc()
	// A read of many pings may cost more than the bucket holds, which
	// WaitN refuses: wait for it a bucket at a time.
	for ; n > rd.h.readBurst; n -= rd.h.readBurst {
		if err := rd.inbound.WaitN(rd.ctx, rd.h.readBurst); err != nil {
			return err
		}
	}
	return rd.inbound.WaitN(rd.ctx, n)
}

// finish closes the socket once the session's writer has sent its close
// frame (at once when the client answered it; within the writer's bounds
// when this reader saw the end first, a silent client or a dead link).
func (rd *reader) finish() {
	t := time.NewTimer(closeLinger + time.Second)
	defer t.Stop()
	select {
	case <-rd.c.closed:
	case <-t.C:
	}
	_ = rd.ws.Close()
}

// extend pushes the read deadline out by three heartbeats, unless the
// connection is closing (its deadline is then closeLinger's).
func (rd *reader) extend() {
	if rd.c.closing.Load() {
		return
	}
	_ = rd.ws.SetReadDeadline(time.Now().Add(rd.silence))
	if rd.c.closing.Load() { // Close ran meanwhile: keep its deadline
		_ = rd.ws.SetReadDeadline(time.Now().Add(closeLinger))
	}
}

// pong is the pong handler: a pong is a sign of life like any frame.
// Its frame is charged by the meter (frameMeter), as it arrives.
func (rd *reader) pong(string) error {
	rd.extend()
	return nil
}

// ping is the ping handler: it counts as a sign of life and is answered,
// as gorilla's default handler does.
func (rd *reader) ping(data string) error {
	rd.extend()
	err := rd.ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(controlWait))
	var ne net.Error
	if errors.Is(err, websocket.ErrCloseSent) || errors.As(err, &ne) && ne.Timeout() {
		return nil
	}
	return err
}

// readDisconnect classifies a read error.
func readDisconnect(err error) core.Disconnect {
	var ne interface{ Timeout() bool }
	switch {
	case errors.Is(err, websocket.ErrReadLimit):
		return core.DisconnectTooLarge
	case errors.As(err, &ne) && ne.Timeout():
		return core.DisconnectHeartbeat
	default:
		return core.DisconnectNormal
	}
}
