package sse

import (
	"context"
	"strconv"
	"sync"
	"time"

	r3 "github.com/r3labs/sse/v2"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/protocol"
)

// conn adapts one event stream to core.Transport. Write and Close are
// called by the session's writer goroutine only.
type conn struct {
	h          *Handler           // Static after construction.
	stream     string             // set before the session can write
	cancel     context.CancelFunc // ends the request, and so the stream
	subscribed chan struct{}      // closed by onSubscribe
	ended      chan struct{}      // closed when the library's handler returned

	subscribedOnce sync.Once

	// Owned by the writer goroutine.
	pos     protocol.Cursor
	encoded string // pos.Encode(), kept while pos is unchanged
	retried bool   // the retry hint has been sent
}

var _ core.Transport = (*conn)(nil)

func newConn(h *Handler, cur protocol.Cursor, rooms []string, cancel context.CancelFunc) *conn {
	pos := protocol.Cursor{}
	for _, room := range rooms {
		if p, ok := cur[room]; ok {
			pos[room] = p
		}
	}
	return &conn{h: h, cancel: cancel, subscribed: make(chan struct{}), ended: make(chan struct{}),
		pos: pos, encoded: pos.Encode()}
}

func (c *conn) Name() string { return Name }

// Write publishes each frame as one event whose id is the cursor after it.
func (c *conn) Write(frames []core.Frame) error {
	select {
	case <-c.subscribed:
	case <-c.ended:
		return core.ErrClosed
	}
	for _, f := range frames {
		if p, ok := c.pos[f.Room]; f.Positions() && (!ok || p != f.Seq) {
			c.pos[f.Room] = f.Seq
			c.encoded = c.pos.Encode()
		}
		ev := &r3.Event{ID: []byte(c.encoded), Data: f.Data}
		if f.Type == protocol.TypePing {
			ev.Comment = []byte("heartbeat")
		}
		if !c.retried || f.Type == protocol.TypePing {
			ev.Retry = []byte(strconv.FormatInt(c.h.cfg.Retry.Milliseconds(), 10))
			c.retried = true
		}
		if err := c.publish(ev); err != nil {
			return err
		}
	}
	return nil
}

// publish hands ev to the library, waiting up to the write timeout for
// room in the stream's buffer. A client that stays behind that long is slow.
func (c *conn) publish(ev *r3.Event) error {
	deadline := time.Now().Add(c.h.cfg.WriteTimeout)
	for wait := time.Millisecond; !c.h.srv.TryPublish(c.stream, ev); wait = min(2*wait, 50*time.Millisecond) {
		if time.Now().After(deadline) {
			return core.ErrSlow
		}
		select {
		case <-c.ended:
			return core.ErrClosed
		case <-time.After(wait):
		}
	}
	return nil
}

// Close ends the stream after the events already published: an event with
// neither data nor comment makes the library end the response in order.
// If that cannot be queued, or the client does not take it, the request is
// cancelled.
func (c *conn) Close(core.Disconnect) {
	select {
	case <-c.subscribed:
		if c.h.srv.TryPublish(c.stream, &r3.Event{}) {
			select {
			case <-c.ended:
			case <-time.After(c.h.cfg.WriteTimeout):
			}
		}
	default:
	}
	c.cancel()
}
