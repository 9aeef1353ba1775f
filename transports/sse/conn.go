package sse

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync/atomic"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/protocol"
	"github.com/chatd/chatd/transports/httpx"
)

// conn is one event stream as a core.Transport. It writes the stream
// itself: each batch of frames becomes one buffer, one write and one
// flush, under a write deadline.
//
// The wire is set up by the handler goroutine, which closes started once
// the response head is out; from then on only the session's writer
// goroutine writes (Write, then Close), so the two never write at once.
type conn struct {
	h    *Handler // Static after construction.
	user string   // Static after construction.

	started chan struct{} // closed by start, once the head is out
	wire    wire          // Set before started closes.
	gz      *gzipStream   // nil: not compressed. Set before started closes, then owned by the writer.
	gone    atomic.Bool   // the client went away (its request ended, or its connection closed)

	// Owned by the session's writer goroutine (broken: by the handler
	// until started closes).
	pos     protocol.Cursor
	encoded string // pos.Encode(), kept while pos is unchanged
	retried bool   // the retry hint has been sent
	broken  bool   // a write failed; nothing more is written
}

var _ core.SlotWriter = (*conn)(nil)

func newConn(h *Handler, user string, cur protocol.Cursor, rooms []string) *conn {
	pos := protocol.Cursor{}
	for _, room := range rooms {
		if p, ok := cur[room]; ok {
			pos[room] = p
		}
	}
	return &conn{h: h, user: user, started: make(chan struct{}), pos: pos, encoded: pos.Encode()}
}

func (c *conn) Name() string { return Name }

// start hands the stream, its head sent on w, to the session's writer;
// a gzipped stream first gets its gzip header. Called once, by the
// handler goroutine.
func (c *conn) start(w wire, gz bool) {
	defer close(c.started)
	c.wire = w
	if gz {
		c.gz = &gzipStream{}
		_ = c.send(gzipHeader) // a failure leaves c broken; Write reports it
	}
}

// maxSent bounds what a client may send up its event stream: past it
// the stream ends as if the client had gone, and the client resumes from
// its last event's id on its next connection.
const maxSent = 8 << 10

// watch reads the hijacked connection until the client closes it (or the
// stream's end closes it), then closes the session. What a client sends
// on an event stream means nothing; it is read only to be discarded, at
// most maxSent of it: read to the stream's end, a client's flood cost a
// system call every 64 bytes (1.9 GB in 10 s kept a core busy).
func (c *conn) watch(nc net.Conn, sess *core.Session) {
	var buf [64]byte
	for sent := 0; sent <= maxSent; {
		n, err := nc.Read(buf[:])
		sent += n
		if err != nil {
			break
		}
	}
	c.gone.Store(true)
	sess.Close(core.DisconnectNormal)
}

// Write writes frames as one batch of events. Each event's id is the
// stream's cursor after it; ephemeral events repeat the current cursor.
func (c *conn) Write(frames []core.Frame) error {
	<-c.started
	if c.broken {
		return c.failed(nil)
	}
	b := getBatch()
	defer putBatch(b)
	return c.send(c.encode(b, frames))
}

// WriteInSlot is Write for a writer that holds a slot among the writers
// at work (core.Config.WritersRunning). On a hijacked connection it keeps
// the slot through the system call unless the socket cannot take the
// batch at once (a slow client); the slot goes back before that is
// waited for, and before a stream not yet started is.
func (c *conn) WriteInSlot(frames []core.Frame, slot core.Slot) error {
	var sc *httpx.SlotConn // none before the stream starts, or off a hijacked connection
	select {
	case <-c.started: // the wire is set once started closes
		if raw, ok := c.wire.(rawWire); ok && !c.broken {
			sc = raw.slots
		}
	default:
	}
	return sc.WriteHolding(slot, c, frames)
}

// WantsSlot reports whether the stream has had a batch (the retry hint
// goes with the first): its first, the answer to its connect, takes no
// slot (see core.SlotWriter).
func (c *conn) WantsSlot() bool { return c.retried }

// encode builds the batch's bytes for the wire in b and returns them.
func (c *conn) encode(b *batch, frames []core.Frame) []byte {
	idle := true
	for _, f := range frames {
		if p, ok := c.pos[f.Room]; f.Positions() && (!ok || p != f.Seq) {
			c.pos[f.Room] = f.Seq
			c.encoded = cursorAfter(f, c.pos)
		}
		retry := ""
		if !c.retried || f.Type == protocol.TypePing {
			retry, c.retried = c.h.retry, true
		}
		idle = idle && f.Type == protocol.TypePing
		b.plain = appendEvent(b.plain, c.encoded, f, retry)
	}
	if c.gz == nil {
		return b.plain
	}
	c.gz.appendBatch(b, c.h.cfg.Compress(c.user), idle)
	return b.out
}

// Close ends the stream after the final frames, which the session has
// just written: a compressed stream gets its gzip trailer, then the
// response ends (a hijacked connection is closed here; otherwise the
// handler, released by the session's end, returns).
func (c *conn) Close(core.Disconnect) {
	<-c.started
	if c.gz != nil && !c.broken {
		b := getBatch()
		c.gz.appendEnd(b)
		_ = c.send(b.out)
		putBatch(b)
	}
	c.wire.end(c.h.cfg.WriteTimeout)
}

// send puts p on the wire within the write timeout.
func (c *conn) send(p []byte) error {
	if err := c.wire.send(p, c.h.cfg.WriteTimeout); err != nil {
		c.broken = true
		return c.failed(err)
	}
	return nil
}

// failed says what a write error means to the session: a client that did
// not take a batch within the write timeout is slow (4008); one that has
// gone away is closed.
func (c *conn) failed(err error) error {
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("sse: no progress for %v: %w (%w)", c.h.cfg.WriteTimeout, core.ErrSlow, err)
	case c.gone.Load():
		return fmt.Errorf("sse: client gone: %w", core.ErrClosed)
	case err == nil:
		return fmt.Errorf("sse: stream broken: %w", core.ErrClosed)
	}
	return fmt.Errorf("sse: write: %w", err)
}
