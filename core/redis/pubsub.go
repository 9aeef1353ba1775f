package redis

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// The pub/sub reader's timing.
const (
	minBackoff = 50 * time.Millisecond // first wait before reconnecting
	maxBackoff = time.Second           // longest wait between reconnects
	inQueue    = 4096                  // received publications the dispatcher has not taken
)

// link is the node's one pub/sub connection. The reader owns its life:
// it replaces the goredis.PubSub whenever the connection fails or stops
// answering, and the new one subscribes to everything the old one had.
type link struct {
	mu     sync.Mutex
	ps     *goredis.PubSub // guarded by mu; replaced by the reader, closed by shutdown
	active map[string]bool // guarded by mu: room channels subscribed on ps
	closed bool            // guarded by mu: set by shutdown

	up   atomic.Bool           // set by the reader: a ping was answered since the link was last lost
	down atomic.Pointer[error] // set by the reader: why the link was last lost
}

// incoming is what the reader hands the dispatcher, in arrival order.
type incoming struct {
	channel string
	payload string
	resync  bool // a marker: the link came back; read up every room first
}

// current returns the PubSub to read from.
func (l *link) current() *goredis.PubSub {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ps
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

func (l *link) health() error {
	if l.up.Load() {
		return nil
	}
	if err := l.down.Load(); err != nil {
		return fmt.Errorf("redis: pub/sub link down: %w", *err)
	}
	return errors.New("redis: pub/sub link not up yet")
}

// replace closes the PubSub and opens a new one on the same channels.
func (e *Engine) replace() {
	l := &e.link
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	_ = l.ps.Close()
	chans := make([]string, 0, len(l.active)+1)
	chans = append(chans, e.keys.control)
	for ch := range l.active {
		chans = append(chans, ch)
	}
	ctx, cancel := context.WithTimeout(e.ctx, e.cfg.Timeout)
	defer cancel()
	l.ps = e.rdb.Subscribe(ctx, chans...) // dials now; a failure shows at the next ping
}

// read is the pub/sub reader goroutine. It pings the link when it has
// been quiet for Lease/3, and takes a ping unanswered within Timeout, or
// any read error, as a lost link: it then reconnects with backoff. A link
// is up once a ping sent after its subscriptions is answered, so every
// subscription is in force; when that follows a loss, a resync marker goes
// to the dispatcher, ahead of anything received later.
func (e *Engine) read() {
	defer e.wg.Done()
	var (
		pings    int
		token    string // the payload of the ping in flight
		ping     = true // send a ping before the next read
		awaiting bool   // a ping is in flight
		backoff  = minBackoff
	)
	for e.ctx.Err() == nil {
		ps := e.link.current()
		if ping {
			pings++
			token = strconv.Itoa(pings)
			if err := ps.Ping(e.psCtx, token); err != nil {
				backoff = e.lost(err, backoff)
				continue
			}
			ping, awaiting = false, true
		}
		wait := e.cfg.Lease / 3
		if awaiting {
			wait = e.cfg.Timeout
		}
		msg, err := ps.ReceiveTimeout(e.psCtx, wait)
		switch {
		case e.ctx.Err() != nil:
			return
		case err != nil && isTimeout(err) && !awaiting:
			ping = true // quiet: is it still there?
			continue
		case err != nil:
			ping, awaiting = true, false
			backoff = e.lost(err, backoff)
			continue
		}
		switch m := msg.(type) {
		case *goredis.Pong:
			if awaiting && m.Payload == token {
				awaiting = false
				if !e.link.up.Load() {
					backoff = minBackoff
					e.linkUp()
				}
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

// forward hands the dispatcher what the reader received. It blocks while
// the dispatcher is behind: Redis then buffers for this node, and past its
// pub/sub output limit drops the connection, which a resync makes good.
func (e *Engine) forward(in incoming) {
	select {
	case e.in <- in:
	case <-e.ctx.Done():
	}
}

// lost marks the link down, waits backoff and reconnects; it returns the
// next backoff.
func (e *Engine) lost(err error, backoff time.Duration) time.Duration {
	e.link.down.Store(&err)
	if e.link.up.Swap(false) {
		e.log.Warn("redis: pub/sub link lost; reconnecting", "err", err)
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
// Append to its room no longer waits (see Engine.track).
func (e *Engine) confirmed(channel string) {
	room, ok := e.keys.roomOf(channel)
	if !ok {
		return
	}
	e.rooms.mu.Lock()
	defer e.rooms.mu.Unlock()
	if st := e.rooms.byName[room]; st != nil {
		st.markReady()
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
