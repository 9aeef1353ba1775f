package redis

import (
	"context"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// The publisher's sizes.
const (
	outQueue     = 4096 // Broadcasts and Announces waiting to be sent
	publishBatch = 256  // PUBLISHes per pipeline
)

// outgoing is one PUBLISH waiting in the queue.
type outgoing struct {
	channel, payload string
}

// enqueue queues o for the publisher, or drops it when the queue is full.
func (e *Engine) enqueue(o outgoing) {
	if e.closed.Load() {
		e.metrics.dropped.WithLabelValues(dropClosed).Inc()
		return
	}
	select {
	case e.out <- o:
	default:
		e.metrics.dropped.WithLabelValues(dropQueueFull).Inc()
	}
}

// send is the publisher goroutine. It applies subscription changes first,
// so that a Subscribe followed by a Broadcast on this node subscribes
// before it publishes (see awaitSubs), then sends whatever is queued in
// one pipeline. Every idleGrace/3 it also drops the rooms nobody wants
// any more.
func (e *Engine) send() {
	defer e.wg.Done()
	tick := time.NewTicker(idleGrace / 3)
	defer tick.Stop()
	batch := make([]outgoing, 0, publishBatch)
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-e.rooms.changed:
			e.syncSubs()
		case <-tick.C:
			e.syncSubs()
		case o := <-e.out:
			select {
			case <-e.rooms.changed:
				e.syncSubs()
			default:
			}
			batch = drain(append(batch[:0], o), e.out)
			e.awaitSubs(batch)
			e.publish(batch)
			clear(batch)
		}
	}
}

// awaitSubs waits, while the link is up and at most Timeout, until this
// node's subscriptions to the rooms of batch are in force, so that a
// Subscribe followed by a Broadcast here reaches this node too, and other
// nodes' subscriptions, queued at the same time, have had their turn.
func (e *Engine) awaitSubs(batch []outgoing) {
	var wait []chan struct{}
	e.rooms.mu.Lock()
	for _, o := range batch {
		room, ok := e.keys.roomOf(o.channel)
		if !ok {
			continue
		}
		if st := e.rooms.byName[room]; st != nil && !st.isReady() {
			wait = append(wait, st.ready)
		}
	}
	e.rooms.mu.Unlock()
	if len(wait) == 0 || !e.link.up.Load() {
		return
	}
	t := time.NewTimer(e.cfg.Timeout)
	defer t.Stop()
	for _, ready := range wait {
		select {
		case <-ready:
		case <-t.C:
			return
		case <-e.ctx.Done():
			return
		}
	}
}

// publish sends batch in one pipeline; if that fails, the events are
// dropped and counted: ephemeral events are at most once.
func (e *Engine) publish(batch []outgoing) {
	err := e.call(e.ctx, "publish", func(ctx context.Context) error {
		_, err := e.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for _, o := range batch {
				p.Publish(ctx, o.channel, o.payload)
			}
			return nil
		})
		return err
	})
	if err != nil {
		e.metrics.dropped.WithLabelValues(dropUnavailable).Add(float64(len(batch)))
		e.log.Debug("redis: publish failed; ephemeral events dropped", "events", len(batch), "err", err)
	}
}

// syncSubs brings the link's subscriptions in line with what the rooms
// want: it subscribes the new ones, and unsubscribes and forgets the ones
// idle past idleGrace. A subscription made while the link is down is
// recorded and made when it reconnects.
func (e *Engine) syncSubs() {
	now := time.Now()
	want := map[string]bool{}
	e.rooms.mu.Lock()
	for name, st := range e.rooms.byName {
		if st.wanted(now) {
			want[e.keys.channel(name)] = true
		} else {
			delete(e.rooms.byName, name)
		}
	}
	e.rooms.mu.Unlock()

	l := &e.link
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	var add, drop []string
	for ch := range want {
		if !l.active[ch] {
			add = append(add, ch)
			l.active[ch] = true
		}
	}
	for ch := range l.active {
		if !want[ch] {
			drop = append(drop, ch)
			delete(l.active, ch)
		}
	}
	ctx, cancel := context.WithTimeout(e.psCtx, e.cfg.Timeout)
	defer cancel()
	if len(add) > 0 {
		if err := l.ps.Subscribe(ctx, add...); err != nil {
			e.log.Debug("redis: subscribe failed; the reconnect will", "rooms", len(add), "err", err)
		}
	}
	if len(drop) > 0 {
		if err := l.ps.Unsubscribe(ctx, drop...); err != nil {
			e.log.Debug("redis: unsubscribe failed; the reconnect will", "rooms", len(drop), "err", err)
		}
	}
}
