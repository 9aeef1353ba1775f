package poll

import (
	"fmt"
	"sync"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/protocol"
)

// errFull ends the session normally: the answer has all it can carry.
var errFull = fmt.Errorf("poll: answer is full: %w", core.ErrDone)

// conn collects the frames of one poll answer. Once sealed or full it
// refuses writes, which ends the session; anything refused is not in the
// answer's cursor, so the next poll fetches it again.
type conn struct {
	max    int           // Static after construction.
	notify chan struct{} // cap 1: frames arrived

	mu     sync.Mutex
	frames []core.Frame // Guarded by mu.
	sealed bool         // Guarded by mu.
}

var _ core.Transport = (*conn)(nil)

func newConn(max int) *conn { return &conn{max: max, notify: make(chan struct{}, 1)} }

func (c *conn) Name() string { return Name }

func (c *conn) Write(frames []core.Frame) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sealed {
		return errFull
	}
	for _, f := range frames {
		if f.Type == protocol.TypePing || f.Type == protocol.TypeDisconnect {
			continue
		}
		c.frames = append(c.frames, f)
	}
	if len(c.frames) > 0 {
		select {
		case c.notify <- struct{}{}:
		default:
		}
	}
	if len(c.frames) >= c.max {
		c.sealed = true
		return errFull
	}
	return nil
}

func (c *conn) Close(core.Disconnect) {}

// full reports whether the answer was cut at MaxEvents.
func (c *conn) full() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sealed
}

// pending reports whether the answer has frames already.
func (c *conn) pending() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.frames) > 0
}

// seal stops collecting and returns the answer's frames.
func (c *conn) seal() []core.Frame {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sealed = true
	return c.frames
}
