package ws

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/protocol"
	"github.com/chatd/chatd/transports/httpx"
)

// errNotUpgraded is what Write returns on a connection whose upgrade failed.
var errNotUpgraded = errors.New("ws: not upgraded")

// conn adapts a gorilla connection to core.Transport. The session's writer
// goroutine is its only caller: Write and Close never run concurrently, and
// a writer that exits and is respawned later is ordered after the previous
// one by the session's lock.
type conn struct {
	ready        chan struct{}          // closed once ws is set (or the upgrade failed); static after construction
	ws           *websocket.Conn        // nil if the upgrade failed; set before ready closes
	slots        *httpx.SlotConn        // what gorilla writes through, nil if the upgrade failed; set before ready closes
	user         string                 // Static after construction.
	writeTimeout time.Duration          // Static after construction.
	appPings     bool                   // send ping envelopes, not control pings; static after construction
	compress     func(user string) bool // asked per batch when deflate was negotiated; static after construction
	deflate      bool                   // the client accepted permessage-deflate; set before ready closes
	upgraded     bool                   // ready has been seen closed; owned by the writer
	deflating    bool                   // this batch is deflated; owned by the writer
	tk           *takeoverState         // non-nil: context takeover negotiated (takeover.go); set before ready closes
	uncork       func()                 // lets the 101 go with the first write (httpx.Cork); set before ready closes
	wrote        bool                   // a Write has run, and uncorked; owned by the writer
	closing      atomic.Bool            // set by Close; read by the reader
	closed       chan struct{}          // closed by Close once the close frame is out; static after construction
}

var _ core.SlotWriter = (*conn)(nil)

func (c *conn) Name() string { return Name }

// Write sends one batch under one write deadline: a control ping first if
// the batch holds a heartbeat (unless the client asked for ping
// envelopes), then the other frames as one WebSocket message — the
// envelope itself when there is one, a JSON array of them otherwise.
func (c *conn) Write(frames []core.Frame) error {
	if err := c.wait(); err != nil {
		return err
	}
	if !c.wrote {
		c.wrote = true
		defer c.flushCork() // the first write takes the 101 along
	}
	deadline := time.Now().Add(c.writeTimeout)
	if err := c.ws.SetWriteDeadline(deadline); err != nil {
		return err
	}
	if c.deflate {
		c.deflating = c.compress(c.user)
		// gorilla deflates only where takeover was not negotiated: on a
		// takeover connection, a message gorilla deflated would enter the
		// client's window and not the writer's history.
		c.ws.EnableWriteCompression(c.deflating && c.tk == nil)
		if !c.deflating {
			c.releaseHistory()
		}
	}
	if c.deflating && c.tk != nil {
		c.tk.deadline = deadline
		return c.writeTakeoverBatch(frames)
	}
	n, pinged := len(frames), false
	if !c.appPings {
		for _, f := range frames {
			if f.Type == protocol.TypePing {
				n--
				pinged = true
			}
		}
	}
	if pinged {
		if err := c.ws.WritePreparedMessage(controlPing); err != nil {
			return err
		}
	}
	switch {
	case n == 0:
		c.releaseHistory() // idle: hold no history until the next message
		return nil
	case n == 1:
		return c.writeOne(frames)
	default:
		return c.writeBatch(frames, n)
	}
}

// WriteInSlot is Write for a writer that holds a slot among the writers
// at work (core.Config.WritersRunning). It keeps the slot through its
// system calls, unless the socket cannot take a write at once (a slow
// client) or the upgrade is not over: the slot goes back before either
// is waited for.
func (c *conn) WriteInSlot(frames []core.Frame, slot core.Slot) error {
	var sc *httpx.SlotConn // none while the upgrade is not over, or if it failed
	if c.upgradeOver() && c.ws != nil {
		sc = c.slots
	}
	return sc.WriteHolding(slot, c, frames)
}

// upgradeOver reports, without waiting, whether the upgrade is over (see
// wait).
func (c *conn) upgradeOver() bool {
	if c.upgraded {
		return true
	}
	select {
	case <-c.ready:
		return true
	default:
		return false
	}
}

// WantsSlot reports whether the connection has been written to: its
// first write, the answer to its connect, takes no slot (see
// core.SlotWriter).
func (c *conn) WantsSlot() bool { return c.wrote }

// flushCork ends the hold on the connection's first bytes (see
// httpx.Cork), if there is one.
func (c *conn) flushCork() {
	if c.uncork != nil {
		c.uncork()
	}
}

// releaseHistory lets the history go: the next message is deflated on its
// own.
func (c *conn) releaseHistory() {
	if c.tk != nil {
		c.tk.hist.Release()
		c.tk.win.reset()
	}
}

// wait returns once the upgrade is over; the writer may have been started
// by the greeting while ServeHTTP was still upgrading. Only the first call
// waits on ready.
func (c *conn) wait() error {
	if !c.upgraded {
		<-c.ready
		c.upgraded = true
	}
	if c.ws == nil {
		return errNotUpgraded
	}
	return nil
}

// writeOne writes the one frame of frames that is not a control ping.
func (c *conn) writeOne(frames []core.Frame) error {
	for _, f := range frames {
		if c.appPings || f.Type != protocol.TypePing {
			return c.writeShared(f)
		}
	}
	return nil
}

// writeBatch writes the n frames of frames that are not control pings as
// one JSON array, assembled in a pooled buffer so that it leaves as one
// WebSocket frame and one system call. A large batch to deflate is
// deflated in memory first (see streamDeflateMax).
func (c *conn) writeBatch(frames []core.Frame, n int) error {
	b, buf := c.array(frames, n)
	defer putBuffer(b)
	if c.deflating && len(buf) > streamDeflateMax {
		pm, err := websocket.NewPreparedMessage(websocket.TextMessage, buf)
		if err != nil {
			return err
		}
		return c.ws.WritePreparedMessage(pm)
	}
	return c.ws.WriteMessage(websocket.TextMessage, buf)
}

// array returns the n frames of frames that are not control pings as one
// JSON array, in a pooled buffer for the caller to put back.
func (c *conn) array(frames []core.Frame, n int) (*[]byte, []byte) {
	size := 1 + n
	for _, f := range frames {
		size += len(f.Data)
	}
	b := getBuffer(size)
	buf := append((*b)[:0], '[')
	for _, f := range frames {
		if !c.appPings && f.Type == protocol.TypePing {
			continue
		}
		if len(buf) > 1 {
			buf = append(buf, ',')
		}
		buf = append(buf, f.Data...)
	}
	buf = append(buf, ']')
	*b = buf
	return b, buf
}

// Close sends the close frame with d's code and a reason that carries the
// reconnect hint, then shuts the socket's write side and leaves the rest
// to the reader, which reads on for at most closeLinger until the client
// answers, and then closes the socket (see reader.read).
func (c *conn) Close(d core.Disconnect) {
	if c.wait() != nil {
		return
	}
	reason := d.Reason
	if d.Reconnect > 0 {
		reason = fmt.Sprintf("%s; reconnect_ms=%d", reason, d.Reconnect.Milliseconds())
	}
	if len(reason) > 120 {
		reason = reason[:120]
	}
	msg := websocket.FormatCloseMessage(d.Code, reason)
	defer c.flushCork()
	c.closing.Store(true)
	_ = c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
	if cw, ok := c.ws.NetConn().(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	_ = c.ws.SetReadDeadline(time.Now().Add(closeLinger))
	close(c.closed)
}
