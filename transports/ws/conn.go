package ws

import (
	"fmt"
	"time"

	"github.com/gorilla/websocket"

	"github.com/chatd/chatd/core"
)

// conn adapts a gorilla connection to core.Transport. Write and Close are
// called only by the session's writer goroutine.
type conn struct {
	ready        chan struct{}   // closed once ws is set (or the upgrade failed)
	ws           *websocket.Conn // nil if the upgrade failed; set before ready closes
	writeTimeout time.Duration   // Static after construction.
}

var _ core.Transport = (*conn)(nil)

var (
	comma   = []byte{','}
	opening = []byte{'['}
	closing = []byte{']'}
)

func (c *conn) Name() string { return Name }

// Write sends one frame: the envelope itself, or a JSON array of them.
func (c *conn) Write(frames []core.Frame) error {
	<-c.ready
	if c.ws == nil {
		return fmt.Errorf("ws: not upgraded")
	}
	if err := c.ws.SetWriteDeadline(time.Now().Add(c.writeTimeout)); err != nil {
		return err
	}
	if len(frames) == 1 {
		return c.ws.WriteMessage(websocket.TextMessage, frames[0].Data)
	}
	w, err := c.ws.NextWriter(websocket.TextMessage)
	if err != nil {
		return err
	}
	_, _ = w.Write(opening)
	for i, f := range frames {
		if i > 0 {
			_, _ = w.Write(comma)
		}
		_, _ = w.Write(f.Data)
	}
	_, _ = w.Write(closing)
	return w.Close()
}

// Close sends the close frame with d's code and a reason that carries the
// reconnect hint, then closes the socket.
func (c *conn) Close(d core.Disconnect) {
	<-c.ready
	if c.ws == nil {
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
	_ = c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
	_ = c.ws.Close()
}
