package poll

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/core/protocol"
)

// errFull ends the session normally: the answer has all it can carry.
var errFull = fmt.Errorf("poll: answer is full: %w", core.ErrDone)

// conn is the transport of one poll session. It collects the frames of
// the session's next answer: the poll waiting for news takes them with
// seal, and frames that arrive after that are kept for the answer after.
// A session thus outlives its answer when the handler keeps it for the
// client's next poll (see keeper), and its frames go on from exactly
// where the answer's cursor ends.
//
// It holds no buffer until the first frame arrives, and hands its frame
// slice to the answer, which gives it back to a pool once written: a
// held poll with no news costs this struct and its channel.
//
// A parked poll's conn answers itself: the first news, or the hold's
// end, writes the answer through park, on the session's writer goroutine
// or the hold's timer.
type conn struct {
	h      *Handler      // Static after construction.
	notify chan struct{} // cap 1: frames arrived; static after construction.
	sess   *core.Session // set before the session's first join, static after.
	timer  *time.Timer   // times the holding poll's waits; nil until the first; owned by that poll.

	mu     sync.Mutex
	frames *[]core.Frame // the next answer's, from framePool; nil until a frame arrives; guarded by mu.
	news   bool          // frames holds one that is not lazy (core.Frame.Lazy); guarded by mu.
	full   bool          // frames reached MaxEvents: the session ends; guarded by mu.
	closed bool          // the session's writer has closed the transport; guarded by mu.
	park   *parked       // the poll waiting for news is parked; guarded by mu.
	newsAt time.Time     // when an answer last took news; guarded by mu.

	// The poll's position after its last answer and the keeper's
	// bookkeeping. Guarded by the keeper's mu while kept; owned by the
	// poll that holds the session otherwise.
	pos    position
	kept   bool        // in the keeper, waiting for the client's next poll
	keptAt time.Time   // when it was kept
	expiry *time.Timer // closes the session if no poll takes it; created once
	armed  bool        // expiry is set to fire; guarded by the keeper's mu
	// spare is a cursor no position refers to any more, for the next
	// answer's (httpx.AdvanceInto); owned by the poll that holds the
	// session.
	spare protocol.Cursor
	// z is the session's deflated stream (deflate.go), for polls with
	// deflate=; owned by the poll that holds the session, or answers it
	// parked.
	z zstream
}

// position is what a kept session's next poll must present to take
// it over: the same identity, rooms and cursor.
type position struct {
	id     auth.Identity
	client string // the client's key (X-Chat-Client), so two tabs never swap sessions
	rooms  []string
	cur    protocol.Cursor // the position after the last answer
	// query is the rooms= value the rooms were parsed from, and cursor
	// cur's wire form as the last answer gave it (once answered): a
	// poll that sends both back unchanged carries on from this position
	// without parsing them (keeper.takeQuery).
	query, cursor string
}

var _ core.InlineWriter = (*conn)(nil)

// framePool holds the frame slices of answers already written.
var framePool = sync.Pool{New: func() any { return new([]core.Frame) }}

// maxPooledFrames bounds the slices kept in framePool: a full answer's
// slice is kept, a freak one is left to the collector.
const maxPooledFrames = 1024

func newConn(h *Handler) *conn { return &conn{h: h, notify: make(chan struct{}, 1)} }

func (c *conn) Name() string { return Name }

// Write adds frames to the next answer, leaving out pings and the
// disconnect envelope, which poll answers never carry, and signals
// notify. Once MaxEvents frames wait, it refuses, which ends the session
// normally: what it refused is in no answer, and the next poll fetches
// it from the store. A parked poll answers with the first frames; then
// the session is kept for the next poll, or ends.
//
// Lazy frames (a large room's presence count) neither answer nor signal:
// they go with the next answer, whatever brings it (news, or the hold's
// end), and a newer count of a room replaces the one waiting. Without
// that, a room of 10k filling up woke every held poll once a second.
func (c *conn) Write(frames []core.Frame) error {
	c.mu.Lock()
	if c.full || c.closed {
		c.mu.Unlock()
		return errFull
	}
	for _, f := range frames {
		if f.Type == protocol.TypePing || f.Type == protocol.TypeDisconnect {
			continue
		}
		c.add(f)
	}
	c.full = c.frames != nil && len(*c.frames) >= c.h.cfg.MaxEvents
	if !c.due() {
		// Nothing, or only lazy frames: they go with the next answer.
		c.mu.Unlock()
		return nil
	}
	if p := c.park; p != nil {
		c.park = nil
		out := c.take()
		full := c.full
		c.mu.Unlock()
		if !p.answer(out, !full) || full {
			return errFull
		}
		return nil
	}
	c.signal()
	full := c.full
	c.mu.Unlock()
	if full {
		return errFull
	}
	return nil
}

// WriteInline adds f to the next answer, as Write does, on the offering
// goroutine (see core.InlineWriter), and signals notify. It leaves to
// Write, on the session's writer, what Write would do more with: a
// ping, a disconnect or a lazy frame, a frame that would fill the answer
// (which ends the session), and any frame for a parked poll (whose
// answer goes to the network) or a closed conn.
func (c *conn) WriteInline(f core.Frame) bool {
	if f.Type == protocol.TypePing || f.Type == protocol.TypeDisconnect || f.Lazy() {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.full || c.closed || c.park != nil || (c.frames != nil && len(*c.frames)+1 >= c.h.cfg.MaxEvents) {
		return false
	}
	c.add(f)
	c.signal()
	return true
}

// add puts f in the next answer, with c.mu held: a lazy frame replaces
// the one of its room waiting (only the latest count matters), any other
// is news.
func (c *conn) add(f core.Frame) {
	if c.frames == nil {
		c.frames = framePool.Get().(*[]core.Frame)
	}
	if f.Lazy() {
		dropLazy(c.frames, f.Room)
	} else {
		c.news = true
	}
	*c.frames = append(*c.frames, f)
}

// signal tells the holding poll, if any, that its answer is due.
func (c *conn) signal() {
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

// Close answers a parked poll that has not answered yet (the hub shuts
// down, the client went away, the token expired) with no events, and
// takes a kept session out of the keeper.
func (c *conn) Close(core.Disconnect) {
	c.mu.Lock()
	p := c.park
	c.park, c.closed = nil, true
	c.mu.Unlock()
	if p != nil {
		p.answer(nil, false)
	}
	c.h.keep.remove(c)
}

// parkWith hands the answer over to p: from now on the session's writer,
// or the hold's end, answers through it. If news has come already, or
// the session has ended, it does not: it returns the frames (if any) and
// true, for the caller to answer now.
func (c *conn) parkWith(p *parked) (*[]core.Frame, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.due() || c.closed {
		return c.take(), true
	}
	c.park = p
	return nil, false
}

// unpark takes the answer back from p when the hold ends. It reports
// false if p has answered already.
func (c *conn) unpark(p *parked) (*[]core.Frame, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.park != p {
		return nil, false
	}
	c.park = nil
	return c.take(), true
}

// pending reports whether frames wait for the next answer. It clears a
// notification left over from frames an earlier answer took.
func (c *conn) pending() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-c.notify:
	default:
	}
	return c.due()
}

// due reports, with c.mu held, whether frames wait that call for an
// answer: one that is not lazy, or as many as an answer holds.
func (c *conn) due() bool { return c.frames != nil && (c.news || c.full) }

// ended reports whether the session will take no more frames: its answer
// was cut at MaxEvents, or it has closed.
func (c *conn) ended() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.full || c.closed
}

// seal returns the frames of the answer due now; they are the caller's
// until it puts them back with releaseFrames. Frames that arrive later
// go into the next answer.
func (c *conn) seal() *[]core.Frame {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.take()
}

// take is seal with c.mu held.
func (c *conn) take() *[]core.Frame {
	out := c.frames
	if c.news {
		c.newsAt = time.Now()
	}
	c.frames, c.news = nil, false
	return out
}

// parkAt is when a held poll with no news parks: at park, or once quiet
// has passed since an answer last took news, if that is later (see
// Config.Quiet).
func (c *conn) parkAt(park time.Time, quiet time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if q := c.newsAt.Add(quiet); quiet > 0 && !c.newsAt.IsZero() && q.After(park) {
		return q
	}
	return park
}

// dropLazy removes from frames the lazy frame of room, if there is one.
// The slot it vacates at the end is zeroed: releaseFrames clears only up
// to the length, and the pooled array would otherwise hold the frame's
// bytes.
func dropLazy(frames *[]core.Frame, room string) {
	fs := *frames
	for i := range fs {
		if fs[i].Lazy() && fs[i].Room == room {
			copy(fs[i:], fs[i+1:])
			fs[len(fs)-1] = core.Frame{}
			*frames = fs[:len(fs)-1]
			return
		}
	}
}

// framesOf returns the frames in p, which may be nil.
func framesOf(p *[]core.Frame) []core.Frame {
	if p == nil {
		return nil
	}
	return *p
}

// releaseFrames gives a frame slice back to the pool once its answer is
// written.
func releaseFrames(p *[]core.Frame) {
	if p == nil || cap(*p) > maxPooledFrames {
		return
	}
	clear(*p) // the frames' bytes are shared with other sessions
	*p = (*p)[:0]
	framePool.Put(p)
}

// arm returns c's timer, set to fire after d. Owned by the poll that
// holds the session, which stops it when done with it.
func (c *conn) arm(d time.Duration) *time.Timer {
	if c.timer == nil {
		c.timer = time.NewTimer(d)
	} else {
		c.timer.Reset(d)
	}
	return c.timer
}

// gather lets frames gather for the answer until until, or deadline if
// that is sooner, unless the client goes away (ctx) or the session ends
// (its answer full, among others), then flushes, so that everything
// queued by then goes into the answer. It returns at once when until has
// passed.
func (c *conn) gather(ctx context.Context, until, deadline time.Time) {
	if deadline.Before(until) {
		until = deadline
	}
	if !time.Now().Before(until) {
		return
	}
	t := c.arm(time.Until(until))
	select {
	case <-t.C:
	case <-ctx.Done():
	case <-c.sess.Context().Done():
	}
	t.Stop()
	_ = c.sess.Flush(ctx)
}

// wait waits until news arrives, until passes, the client goes away (ctx)
// or the session ends, and reports whether news came. It does not flush:
// a held poll with nothing to say thus starts no writer and holds no
// buffer.
func (c *conn) wait(ctx context.Context, until time.Time) bool {
	t := c.arm(time.Until(until))
	defer t.Stop()
	select {
	case <-c.notify:
		return true
	case <-t.C:
	case <-ctx.Done():
	case <-c.sess.Context().Done():
	}
	return false
}
