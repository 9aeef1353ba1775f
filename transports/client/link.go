package client

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/chatd/chatd/core/protocol"
)

// link is one connection over one tier. Run's goroutine creates it,
// supervises it, and waits for its reader goroutine to return before it
// starts the next one, so only one link at a time delivers envelopes.
type link struct {
	c    *Client // Static after construction.
	tier string  // Static after construction.
	tok  string  // the bearer token the link connects with; static after construction.
	off  offer   // the negotiate answer it started with; static after construction.

	ctx    context.Context // cancelled to end the link
	cancel context.CancelFunc

	up      chan struct{}          // closed at the first server envelope
	upOnce  sync.Once              //
	upAt    time.Time              // when up closed; written before it closes
	seen    atomic.Int64           // unix ns of the last frame, event or line; the watchdog reads it
	resub   chan struct{}          // cap 1: the rooms changed and the link must restart (SSE)
	kick    chan struct{}          // cap 1: the rooms changed; poll again now (poll)
	control chan protocol.Envelope // cap 1: the newest control envelope
	done    chan struct{}          // closed when the reader has returned

	// end says how the link ended. Owned by the reader goroutine until
	// done closes; read by the supervisor after.
	end ending

	subscribed bool        // the reader took its snapshot of the rooms; guarded by c.mu
	idle       atomic.Bool // no rooms, so no stream and no heartbeats to expect

	// WebSocket only.
	wmu     sync.Mutex
	ws      *websocket.Conn                   // set once dialed; guarded by wmu
	pmu     sync.Mutex                        //
	pending map[string]chan protocol.Envelope // replies awaited, by ref; guarded by pmu
	joins   map[string]string                 // join refs in flight → room; guarded by pmu
	asked   map[string]bool                   // rooms joined by the dial's query, not yet answered; guarded by pmu
	refs    atomic.Uint64

	// Poll only.
	pollMu     sync.Mutex
	pollCancel context.CancelFunc // cancels the poll in flight; guarded by pollMu
	kicked     bool               // the rooms changed since the poll started; guarded by pollMu
}

// ending is how a link ended.
type ending struct {
	err       error         // the failure, if any
	code      int           // the server's close code, from a close frame or disconnect envelope
	reason    string        // the server's close reason
	reconnect time.Duration // the server's reconnect hint
}

// outcome is what Run learns from a finished link.
type outcome struct {
	connected bool          // the link went live before it ended
	lived     time.Duration // how long it was live, if it was
	end       ending        // why it ended
	next      string        // the tier to try first next (a move)
	resumed   bool          // it went live on the offer in hand, without negotiate
}

func newLink(ctx context.Context, c *Client, tier, tok string, off offer) *link {
	ctx, cancel := context.WithCancel(ctx)
	return &link{
		c: c, tier: tier, tok: tok, off: off, ctx: ctx, cancel: cancel,
		up: make(chan struct{}), resub: make(chan struct{}, 1),
		kick: make(chan struct{}, 1), control: make(chan protocol.Envelope, 1), done: make(chan struct{}),
		pending: make(map[string]chan protocol.Envelope), joins: make(map[string]string), asked: make(map[string]bool),
	}
}

func (l *link) markUp() {
	l.upOnce.Do(func() {
		l.c.connects.Add(1) // before anything the link delivers
		l.upAt = l.c.cfg.Now()
		close(l.up)
	})
}

func (l *link) isUp() bool {
	select {
	case <-l.up:
		return true
	default:
		return false
	}
}

// fail ends the link for err. Only the reader goroutine calls it.
func (l *link) fail(err error) {
	if l.end.err == nil && l.end.code == 0 {
		l.end.err = err
	}
	l.cancel()
}

// touch tells the supervisor's watchdog that the link carried something.
// It is a store, not a wakeup: a busy link costs its supervisor nothing.
func (l *link) touch() { l.seen.Store(time.Now().UnixNano()) }

// quiet returns how long the link has carried nothing.
func (l *link) quiet() time.Duration { return time.Since(time.Unix(0, l.seen.Load())) }

// heartbeat is the server's ping interval for this link.
func (l *link) heartbeat() time.Duration {
	if l.off.HeartbeatMS > 0 {
		return msDuration(l.off.HeartbeatMS)
	}
	return 15 * time.Second
}

// run is the link's reader goroutine: it connects and reads until the
// link ends.
func (l *link) run() {
	defer close(l.done)
	defer l.cancel()
	switch l.tier {
	case WebSocket:
		l.runWS()
	case SSE:
		l.runSSE()
	case Poll:
		l.runPoll()
	}
}

// roomsChanged tells the link that a room was joined or left (a join or
// leave envelope). It runs on the caller's goroutine.
func (l *link) roomsChanged(e protocol.Envelope) {
	switch l.tier {
	case WebSocket:
		if e.Type == protocol.TypeJoin {
			e.Ref = l.joinRef(e.Room)
		}
		_ = l.write(e) // on failure the link ends, and the next one joins from the rooms
	case SSE:
		signal(l.resub)
	case Poll:
		if e.Type == protocol.TypeJoin {
			l.kickPoll()
		}
	}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// attach makes l the current link, for Join, Leave and Send.
func (c *Client) attach(l *link) {
	c.mu.Lock()
	c.link = l
	c.mu.Unlock()
}

func (c *Client) detach(l *link) {
	c.mu.Lock()
	if c.link == l {
		c.link = nil
	}
	c.mu.Unlock()
}

// subscribe returns the rooms to subscribe l to and the positions to
// resume them from, and marks l as subscribed: a later Join or Leave is
// told to l instead of being in this snapshot. With Config.UserEvents,
// since also holds the user's own stream under "~" once it has a
// position.
func (c *Client) subscribe(l *link) ([]string, map[string]uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	l.subscribed = true
	return c.positions()
}

// positions returns the rooms followed and the positions to resume them
// from, as subscribe does, without marking a link. Called with mu held.
func (c *Client) positions() ([]string, map[string]uint64) {
	since := make(map[string]uint64)
	for _, r := range c.rooms {
		if p, ok := c.pos[r]; ok {
			since[r] = p
		}
	}
	if p, ok := c.pos[protocol.UserRoom]; ok && c.cfg.UserEvents {
		since[protocol.UserRoom] = p
	}
	return append([]string(nil), c.rooms...), since
}

// runLink connects over tier and supervises the link until it ends.
func (c *Client) runLink(ctx context.Context, tier, tok string, off offer) outcome {
	l := newLink(ctx, c, tier, tok, off)
	c.attach(l)
	defer c.detach(l)
	go l.run()
	return c.supervise(ctx, l)
}

// supervise waits for l to connect within the connect timeout, then
// watches it: the dead-link watchdog, tier moves asked by SwitchTransport
// or a control envelope, room changes that need a new SSE stream, and the
// end of Run.
func (c *Client) supervise(ctx context.Context, l *link) outcome {
	limit := c.cfg.ConnectTimeout
	if l.tier == Poll {
		limit += c.cfg.PollHold // a resuming poll is held until there is news
	}
	connect := time.NewTimer(limit)
	defer connect.Stop()
	select {
	case <-l.up:
	case <-l.done:
		return l.outcome()
	case <-connect.C:
		return l.stop(errConnectTimeout)
	case <-ctx.Done():
		return l.stop(ctx.Err())
	}
	c.setState(func(s *State) { *s = State{Transport: l.tier, Connected: true} })
	c.cfg.Logger.Debug("chat client connected", "transport", l.tier)

	var watchdog <-chan time.Time
	silence := 3 * l.heartbeat()
	l.touch() // the silence is counted from now
	dog := time.NewTimer(silence)
	defer dog.Stop()
	if l.tier != Poll { // poll has no heartbeats; each request has its own deadline
		watchdog = dog.C
	}
	var move <-chan time.Time
	moveTo := ""              // where a pending move goes
	known := l.off.Transports // what the server offered before the latest control
	for {
		select {
		case <-l.done:
			return l.outcome()
		case <-ctx.Done():
			return l.stop(ctx.Err())
		case <-watchdog:
			if l.idle.Load() {
				dog.Reset(silence)
				continue
			}
			if q := l.quiet(); q < silence {
				dog.Reset(silence - q) // something came since: wait out the rest
				continue
			}
			return l.stop(errDeadLink)
		case <-c.moves:
			if to := c.takeWant(l.tier); to != "" && c.offers(to) {
				return l.moveTo(to)
			}
		case <-l.resub:
			return l.moveTo(l.tier)
		case e := <-l.control:
			if to := c.moveTarget(l.tier, known, e); to != "" && to != moveTo {
				moveTo, move = to, time.After(c.jitter(c.cfg.MoveJitter))
			} else if moveTo != "" && e.Transports != nil && !slices.Contains(e.Transports, moveTo) {
				moveTo, move = "", nil // the offer was withdrawn
			}
			if e.Transports != nil {
				known = e.Transports
			}
		case <-move:
			return l.moveTo(moveTo)
		}
	}
}

// stop ends the link for err and waits for its reader.
func (l *link) stop(err error) outcome {
	l.cancel()
	<-l.done
	out := l.outcome()
	if out.end.code == 0 {
		out.end = ending{err: err} // the reader saw only the effect of cancel
	}
	return out
}

// moveTo ends the link so that Run connects over tier next.
func (l *link) moveTo(tier string) outcome {
	l.cancel()
	<-l.done
	return l.lifetime(outcome{connected: l.isUp(), next: tier})
}

func (l *link) outcome() outcome {
	return l.lifetime(outcome{connected: l.isUp(), end: l.end})
}

// lifetime sets out.lived, once the link has ended.
func (l *link) lifetime(out outcome) outcome {
	if out.connected {
		out.lived = l.c.cfg.Now().Sub(l.upAt)
	}
	return out
}

func msDuration(ms int64) time.Duration { return time.Duration(ms) * time.Millisecond }
