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
// answer's cursor, so the next poll fetches it again. It holds no buffer
// until the first frame arrives, and gives its frame slice back to a pool
// once the answer is written: a held poll with no news costs this struct
// and its channel.
//
// A parked poll's conn answers itself: the first news, or the session's
// end, writes the answer through park, on the session's writer goroutine.
type conn struct {
	max    int           // Static after construction.
	notify chan struct{} // cap 1: frames arrived; static after construction.

	mu     sync.Mutex
	frames *[]core.Frame // from framePool, nil until the first frame; guarded by mu.
	sealed bool          // Guarded by mu.
	park   *parked       // set when the poll is parked; guarded by mu.
}

var _ core.Transport = (*conn)(nil)

// framePool holds the frame slices of answers already written.
var framePool = sync.Pool{New: func() any { return new([]core.Frame) }}

// maxPooledFrames bounds the slices kept in framePool: a full answer's
// slice is kept, a freak one is left to the collector.
const maxPooledFrames = 1024

func newConn(max int) *conn { return &conn{max: max, notify: make(chan struct{}, 1)} }

func (c *conn) Name() string { return Name }

// Write adds frames to the answer, leaving out pings and the disconnect
// envelope, which poll answers never carry. It signals notify when the
// answer has frames, and refuses once the answer is sealed or full. A
// parked poll answers with the first frames and refuses from then on.
func (c *conn) Write(frames []core.Frame) error {
	c.mu.Lock()
	if c.sealed {
		c.mu.Unlock()
		return errFull
	}
	for _, f := range frames {
		if f.Type == protocol.TypePing || f.Type == protocol.TypeDisconnect {
			continue
		}
		if c.frames == nil {
			c.frames = framePool.Get().(*[]core.Frame)
		}
		*c.frames = append(*c.frames, f)
	}
	if c.frames == nil {
		c.mu.Unlock()
		return nil
	}
	if p := c.park; p != nil {
		c.sealed = true
		out := *c.frames
		c.mu.Unlock()
		p.answer(out)
		c.release()
		return errFull
	}
	select {
	case c.notify <- struct{}{}:
	default:
	}
	full := len(*c.frames) >= c.max
	c.sealed = full
	c.mu.Unlock()
	if full {
		return errFull
	}
	return nil
}

// Close answers a parked poll that has not answered yet (the hold is
// over, the hub shuts down, the client went away) with no events.
func (c *conn) Close(core.Disconnect) {
	c.mu.Lock()
	p, answered := c.park, c.sealed
	c.sealed = true
	c.mu.Unlock()
	if p != nil && !answered {
		p.answer(nil)
	}
}

// parkWith hands the answer over to p: from now on the session's writer
// answers through it. If news has come already, or the session has ended,
// it does not: it seals c and returns the frames (if any), for the caller
// to answer now.
func (c *conn) parkWith(p *parked) ([]core.Frame, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.frames != nil || c.sealed {
		c.sealed = true
		if c.frames == nil {
			return nil, true
		}
		return *c.frames, true
	}
	c.park = p
	return nil, false
}

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
	return c.frames != nil
}

// seal stops collecting and returns the answer's frames. They stay the
// caller's until release.
func (c *conn) seal() []core.Frame {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sealed = true
	if c.frames == nil {
		return nil
	}
	return *c.frames
}

// release gives the frame slice back to the pool once the answer is
// written. Called after seal.
func (c *conn) release() {
	c.mu.Lock()
	p := c.frames
	c.frames = nil
	c.mu.Unlock()
	if p == nil || cap(*p) > maxPooledFrames {
		return
	}
	clear(*p) // the frames' bytes are shared with other sessions
	*p = (*p)[:0]
	framePool.Put(p)
}
