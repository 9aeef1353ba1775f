package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// The pub/sub link's timing.
const (
	minBackoff = 50 * time.Millisecond // first wait before reconnecting
	maxBackoff = time.Second           // longest wait between reconnects
	inQueue    = 4096                  // received publications the dispatcher has not taken
)

// link is the node's one pub/sub connection. The reader owns its life:
// it replaces the goredis.PubSub whenever the connection fails, and the
// new one subscribes to everything the old one had. The watchdog pings
// it and closes a connection that stops answering, which the reader then
// sees fail.
type link struct {
	mu     sync.Mutex
	ps     *goredis.PubSub // guarded by mu; replaced by the reader, closed by shutdown
	gen    uint64          // guarded by mu: bumped by each replacement of ps
	active map[string]bool // guarded by mu: room channels subscribed on ps
	closed bool            // guarded by mu: set by shutdown

	fresh    chan struct{}          // holds one: a new ps is in place; the watchdog pings it at once
	answered chan struct{}          // holds one: the reader got the pong the watchdog waits for
	token    atomic.Pointer[string] // the payload of the watchdog's ping in flight
	why      atomic.Pointer[error]  // set by the watchdog before it closes a silent ps: why

	stalled atomic.Bool // set by the reader while it waits for the dispatcher: backpressure, not a dead link

	up   atomic.Bool           // set by the reader: a ping was answered since the link was last lost
	down atomic.Pointer[error] // set by the reader: why the link was last lost
}

// incoming is what the reader hands the dispatcher, in arrival order:
// a publication, or one of three markers.
type incoming struct {
	channel string
	payload string
	confirm string // a marker: the subscription to this room is in force
	lost    bool   // a marker: the link was lost; a resync will follow
	resync  bool   // a marker: the link came back; read up every room first
}

// current returns the PubSub in use and its generation.
func (l *link) current() (*goredis.PubSub, uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ps, l.gen
}

// close closes the PubSub, which ends the reader's blocking read.
func (l *link) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	if l.ps != nil {
		_ = l.ps.Close()
	}
}

// kill closes the PubSub of generation gen, if it is still the one in
// use, so that the reader's blocked read fails and it reconnects.
func (l *link) kill(gen uint64, why error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || l.gen != gen {
		return
	}
	l.why.Store(&why)
	_ = l.ps.Close()
}

// answer reports whether payload is the pong the watchdog waits for, and
// tells it.
func (l *link) answer(payload string) bool {
	if t := l.token.Load(); t == nil || *t != payload {
		return false
	}
	signal(l.answered)
	return true
}

// signal wakes whoever waits on ch, a channel that holds one.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

func (l *link) health() error {
	if l.up.Load() {
		return nil
	}
	if err := l.down.Load(); err != nil {
		return fmt.Errorf("redis: pub/sub link down: %w", *err)
	}
	return errors.New("redis: pub/sub link not up yet")
}

// replace closes the PubSub and opens a new one on the same channels. It
// dials without holding link.mu, so that the publisher and Subscribe are
// not held up meanwhile; what they subscribed or dropped during the dial
// is applied to the new PubSub afterwards.
func (e *Engine) replace() {
	l := &e.link
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	old := l.ps
	had := make(map[string]bool, len(l.active))
	chans := make([]string, 0, len(l.active)+1)
	chans = append(chans, e.keys.control)
	for ch := range l.active {
		had[ch] = true
		chans = append(chans, ch)
	}
	l.mu.Unlock()
	_ = old.Close()

	ctx, cancel := context.WithTimeout(e.ctx, e.cfg.Timeout)
	ps := e.rdb.Subscribe(ctx, chans...) // dials now; a failure shows at the first read or ping
	cancel()

	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		_ = ps.Close()
		return
	}
	l.ps = ps
	l.gen++
	var add, drop []string
	for ch := range l.active {
		if !had[ch] {
			add = append(add, ch)
		}
	}
	for ch := range had {
		if !l.active[ch] {
			drop = append(drop, ch)
		}
	}
	e.resubscribe(ps, add, drop)
	signal(l.fresh)
}

// resubscribe applies subscription changes to ps, an open connection: it
// never dials (noDial). A failure shows at the link's next read or ping.
// Called with link.mu held.
func (e *Engine) resubscribe(ps *goredis.PubSub, add, drop []string) {
	ctx, cancel := context.WithTimeout(e.psCtx, e.cfg.Timeout)
	defer cancel()
	if len(add) > 0 {
		if err := ps.Subscribe(ctx, add...); err != nil {
			e.log.Debug("redis: subscribe failed; the reconnect will", "rooms", len(add), "err", err)
		}
	}
	if len(drop) > 0 {
		if err := ps.Unsubscribe(ctx, drop...); err != nil {
			e.log.Debug("redis: unsubscribe failed; the reconnect will", "rooms", len(drop), "err", err)
		}
	}
}

// read is the pub/sub reader goroutine. It blocks in Receive with no
// deadline (a deadline firing in the middle of a reply would leave the
// stream unreadable); the watchdog closes a connection that stops
// answering, and any read error counts as a lost link: the reader then
// reconnects with backoff. A link is up once a ping sent after its
// subscriptions is answered, so every subscription is in force.
func (e *Engine) read() {
	defer e.wg.Done()
	backoff := minBackoff
	for e.ctx.Err() == nil {
		ps, _ := e.link.current()
		msg, err := ps.Receive(e.psCtx)
		switch {
		case e.ctx.Err() != nil:
			return
		case err != nil:
			backoff = e.lost(err, backoff)
			continue
		}
		switch m := msg.(type) {
		case *goredis.Pong:
			if e.link.answer(m.Payload) && !e.link.up.Load() {
				backoff = minBackoff
				e.linkUp()
			}
		case *goredis.Subscription:
			if m.Kind == "subscribe" {
				e.confirmed(m.Channel)
			}
		case *goredis.Message:
			e.forward(incoming{channel: m.Channel, payload: m.Payload})
		}
	}
}

// watch is the watchdog goroutine: it pings the link every Lease/3, and
// at once when a new connection is in place (see pingLink).
func (e *Engine) watch() {
	defer e.wg.Done()
	l := &e.link
	tick := time.NewTicker(e.cfg.Lease / 3)
	defer tick.Stop()
	for n := 1; ; n++ {
		switch e.pingLink(strconv.Itoa(n)) {
		case pingStop:
			return
		case pingFresh:
			continue
		}
		select {
		case <-tick.C:
		case <-l.fresh:
		case <-e.ctx.Done():
			return
		}
	}
}

// What pingLink saw.
const (
	pingDone  = iota // answered, or the connection was closed
	pingFresh        // a new connection came in place meanwhile
	pingStop         // shutdown
)

// pingLink pings the connection in use with token and waits for the
// pong. It closes a connection that does not answer within Timeout,
// unless the reader is held up handing the dispatcher what it read
// (backpressure: Redis buffers meanwhile, and past its output limit drops
// the connection itself).
func (e *Engine) pingLink(token string) int {
	l := &e.link
	ps, gen := l.current()
	l.token.Store(&token)
	select {
	case <-l.answered: // a stale answer
	default:
	}
	if err := ps.Ping(e.psCtx, token); err != nil {
		l.kill(gen, fmt.Errorf("ping: %w", err))
		return pingDone
	}
	t := time.NewTimer(e.cfg.Timeout)
	defer t.Stop()
	for {
		select {
		case <-l.answered:
			return pingDone
		case <-l.fresh:
			return pingFresh
		case <-e.ctx.Done():
			return pingStop
		case <-t.C:
			if !l.stalled.Load() {
				l.kill(gen, fmt.Errorf("ping not answered within %v", e.cfg.Timeout))
				return pingDone
			}
			t.Reset(e.cfg.Timeout)
		}
	}
}

// forward hands the dispatcher what the reader received. It blocks while
// the dispatcher is behind: Redis then buffers for this node, and past its
// pub/sub output limit drops the connection, which a resync makes good.
func (e *Engine) forward(in incoming) {
	select {
	case e.in <- in:
		return
	default:
	}
	e.link.stalled.Store(true)
	defer e.link.stalled.Store(false)
	select {
	case e.in <- in:
	case <-e.ctx.Done():
	}
}

// lost marks the link down, tells the dispatcher (the first time after
// it was up), waits backoff and reconnects; it returns the next backoff.
func (e *Engine) lost(err error, backoff time.Duration) time.Duration {
	if why := e.link.why.Swap(nil); why != nil {
		err = *why
	}
	e.link.down.Store(&err)
	if e.link.up.Swap(false) {
		e.log.Warn("redis: pub/sub link lost; reconnecting", "err", err)
		e.forward(incoming{lost: true})
	}
	if hold := e.hold.Load(); hold != nil {
		(*hold)()
	}
	t := time.NewTimer(backoff)
	defer t.Stop()
	select {
	case <-t.C:
	case <-e.ctx.Done():
		return backoff
	}
	e.replace()
	return min(2*backoff, maxBackoff)
}

// linkUp marks the link up. The first time it lets Open go on; after a
// loss it queues a resync.
func (e *Engine) linkUp() {
	e.link.up.Store(true)
	select {
	case <-e.linkOnce:
		e.log.Info("redis: pub/sub link restored; resyncing subscribed rooms")
		e.forward(incoming{resync: true})
	default:
		close(e.linkOnce)
	}
}

// confirmed records that the subscription to channel is in force: an
// Append to its room no longer waits (see Engine.track), and the
// dispatcher reads the room's head (see Engine.base).
func (e *Engine) confirmed(channel string) {
	room, ok := e.keys.roomOf(channel)
	if !ok {
		return
	}
	e.rooms.mu.Lock()
	st := e.rooms.byName[room]
	if st != nil {
		st.markReady()
	}
	e.rooms.mu.Unlock()
	if st != nil {
		e.forward(incoming{confirm: room})
	}
}
