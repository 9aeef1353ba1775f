package redis

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/protocol"
)

// idleGrace is how long a room stays subscribed after the hub let go of
// it or this node last appended to it. Re-subscribing within it costs
// nothing, which absorbs the churn of a room whose last session leaves
// and a new one joins.
const idleGrace = 30 * time.Second

// fastWrite bounds the SUBSCRIBE that Subscribe writes itself.
const fastWrite = 20 * time.Millisecond

// rooms is what this node wants of each room and what it has delivered.
type rooms struct {
	mu      sync.Mutex
	byName  map[string]*roomState // guarded by mu
	changed chan struct{}         // holds one: wakes the publisher to subscribe
}

// roomState is one room this node subscribes to. Guarded by rooms.mu.
type roomState struct {
	hub   bool          // the hub subscribed and has not unsubscribed
	used  time.Time     // last Append through this node or Unsubscribe; starts idleGrace
	ready chan struct{} // closed once a subscription to the room is in force
	last  uint64        // highest seq handed to the handler; 0: none yet
	base  uint64        // the room's head, read once the subscription was in force
	based bool          // base was read: a resync reads the room from max(last, base)
	epoch string        // the room's epoch as the last resync read it
}

// from is where a resync reads the room from, and floor the highest seq
// this node knows was handed out in it (a head below it means lost data).
func (st *roomState) from() uint64 {
	if st.last > 0 {
		return st.last
	}
	return st.base
}

func (st *roomState) floor() uint64 { return max(st.last, st.base) }

func newRoomState() *roomState { return &roomState{ready: make(chan struct{})} }

func (st *roomState) isReady() bool {
	select {
	case <-st.ready:
		return true
	default:
		return false
	}
}

func (st *roomState) markReady() {
	if !st.isReady() {
		close(st.ready)
	}
}

// wanted reports whether the room should stay subscribed at now.
func (st *roomState) wanted(now time.Time) bool { return st.hub || now.Sub(st.used) < idleGrace }

// state returns room's state, creating it if needed, and whether it did.
// Called with rooms.mu held.
func (e *Engine) state(room string) (*roomState, bool) {
	if st := e.rooms.byName[room]; st != nil {
		return st, false
	}
	st := newRoomState()
	st.used = time.Now()
	e.rooms.byName[room] = st
	return st, true
}

// subscribeNow subscribes to a room just wanted. If the link is up and
// nobody else is using it, it writes the SUBSCRIBE itself, so that the
// subscription is on the wire before Subscribe returns: anything another
// node publishes after that reaches this one. That write goes to an open
// connection, under a short deadline, and never dials (see noDial), so it
// does not block in any way that matters. Otherwise it wakes the
// publisher, which subscribes on its own goroutine.
func (e *Engine) subscribeNow(room string) {
	if !e.trySubscribe(room) {
		select {
		case e.rooms.changed <- struct{}{}:
		default:
		}
	}
}

// trySubscribe writes the SUBSCRIBE for room if the link is up and free,
// and reports whether it did (or found it done).
func (e *Engine) trySubscribe(room string) bool {
	l := &e.link
	if !l.up.Load() || !l.mu.TryLock() {
		return false
	}
	defer l.mu.Unlock()
	ch := e.keys.channel(room)
	if l.closed || l.active[ch] {
		return !l.closed
	}
	ctx, cancel := context.WithTimeout(e.psCtx, fastWrite)
	defer cancel()
	if err := l.ps.Subscribe(ctx, ch); err != nil {
		e.log.Debug("redis: subscribe failed; the reconnect will", "room", room, "err", err)
	}
	l.active[ch] = true // recorded on the PubSub either way: a reconnect subscribes it
	return true
}

// Register implements core.Broker.
func (e *Engine) Register(h core.Handler) { e.handler.Store(&h) }

// Subscribe implements core.Broker without blocking (see subscribeNow).
// Until the subscription is in force, an Append to the room from this
// node waits for it, so that the node hears of everything appended from
// then on.
func (e *Engine) Subscribe(room string) {
	e.rooms.mu.Lock()
	st, created := e.state(room)
	st.hub = true
	e.rooms.mu.Unlock()
	if created {
		e.subscribeNow(room)
	}
}

// Unsubscribe implements core.Broker. The room stays subscribed for
// idleGrace, and is dropped by the publisher after that unless it is
// wanted again.
func (e *Engine) Unsubscribe(room string) {
	e.rooms.mu.Lock()
	defer e.rooms.mu.Unlock()
	if st := e.rooms.byName[room]; st != nil && st.hub {
		st.hub, st.used = false, time.Now()
	}
}

// track makes sure the node is subscribed to room before an Append to it,
// so that the message comes back through pub/sub, in seq order with
// everyone else's. This is how the messages of a node's own appends reach
// its handler even in a room the hub did not subscribe to: core.Store
// publishes every new message to the node's handler (storetest's
// PublishAfterStore), and the hub's Send needs no join. Publishing it
// straight from Append would be cheaper but could not keep the room's seq
// order against other nodes' appends; the subscription costs one SUBSCRIBE
// per room appended to, held idleGrace. It returns the highest seq this
// node knows in room, the floor for the new seq.
func (e *Engine) track(ctx context.Context, room string) (uint64, error) {
	e.rooms.mu.Lock()
	st, created := e.state(room)
	st.used = time.Now()
	ready, floor := st.ready, st.floor()
	e.rooms.mu.Unlock()
	if created {
		e.subscribeNow(room)
	}
	if st.isReady() {
		return floor, nil
	}
	t := time.NewTimer(e.cfg.Timeout)
	defer t.Stop()
	select {
	case <-ready:
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-e.closing:
		return 0, core.ErrClosed
	case <-t.C:
		e.metrics.errors.WithLabelValues("append").Inc()
		return 0, unavailable("append", errors.Join(errors.New("no pub/sub subscription to the room"), e.link.health()))
	}
	e.rooms.mu.Lock()
	defer e.rooms.mu.Unlock()
	return st.floor(), nil
}

// Broadcast implements core.Broker: at most once, never blocking. A full
// publish queue drops the event and counts it.
func (e *Engine) Broadcast(room string, env protocol.Envelope) {
	payload, err := encodeEphemeral(env)
	if err != nil {
		e.metrics.dropped.WithLabelValues(dropEncode).Inc()
		return
	}
	e.enqueue(outgoing{channel: e.keys.channel(room), payload: payload})
}

// Announce implements core.Broker, as Broadcast does, on the control
// channel that every node subscribes to.
func (e *Engine) Announce(c core.Control) {
	payload, err := encodeControl(c)
	if err != nil {
		e.metrics.dropped.WithLabelValues(dropEncode).Inc()
		return
	}
	e.enqueue(outgoing{channel: e.keys.control, payload: payload})
}
