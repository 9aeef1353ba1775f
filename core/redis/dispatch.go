package redis

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/protocol"
)

// dispatchBatch bounds what the dispatcher takes from the reader at once.
const dispatchBatch = 512

// dispatch is the dispatcher goroutine: it decodes what the reader
// received and hands it to the handler, in arrival order, committed
// messages batched (what arrived together, in per-room seq order). It
// runs the resyncs the reader asks for, in their place in that order.
func (e *Engine) dispatch() {
	defer e.wg.Done()
	batch := make([]incoming, 0, dispatchBatch)
	for {
		select {
		case <-e.ctx.Done():
			return
		case in := <-e.in:
			batch = drain(append(batch[:0], in), e.in)
			e.deliver(batch)
			clear(batch)
		}
	}
}

// deliver hands one batch to the handler. Messages are held back until
// something else (an ephemeral or control event, a resync) must go first,
// so that the handler sees everything in arrival order.
func (e *Engine) deliver(batch []incoming) {
	h := e.handlerOrDrop()
	var msgs []protocol.Message
	flush := func() {
		if len(msgs) > 0 {
			h.Publish(msgs)
			msgs = nil // the handler may keep the slice
		}
	}
	for _, in := range batch {
		if in.resync {
			flush()
			e.resync(h)
			continue
		}
		room, _ := e.keys.roomOf(in.channel)
		p, err := decodePublication(room, in.payload)
		if err != nil {
			e.metrics.dropped.WithLabelValues(dropCorrupt).Inc()
			e.log.Error("redis: publication does not decode", "channel", in.channel, "err", err)
			continue
		}
		switch p.kind {
		case kindMessage:
			if e.admit(p.msg) {
				msgs = append(msgs, p.msg)
			}
		case kindEphemeral:
			flush()
			h.Deliver(room, p.env)
		case kindControl:
			flush()
			h.Control(p.ctl)
		}
	}
	flush()
}

// handlerOrDrop returns the registered handler, or before Register one
// that drops everything and counts it.
func (e *Engine) handlerOrDrop() core.Handler {
	if hp := e.handler.Load(); hp != nil {
		return *hp
	}
	return dropAll{e.metrics}
}

// dropAll is the handler before Register.
type dropAll struct{ m *metrics }

func (d dropAll) Publish(ms []protocol.Message) {
	d.m.dropped.WithLabelValues(dropNoHandler).Add(float64(len(ms)))
}
func (d dropAll) Deliver(string, protocol.Envelope) { d.m.dropped.WithLabelValues(dropNoHandler).Inc() }
func (d dropAll) Control(core.Control)              { d.m.dropped.WithLabelValues(dropNoHandler).Inc() }

// admit reports whether m is the next message to deliver in its room:
// the room is subscribed and m is beyond the last one delivered. A resync
// and the live publications it overlaps then deliver each message once.
func (e *Engine) admit(m protocol.Message) bool {
	e.rooms.mu.Lock()
	defer e.rooms.mu.Unlock()
	st := e.rooms.byName[m.Room]
	switch {
	case m.Room == "" || st == nil:
		e.metrics.dropped.WithLabelValues(dropUnsubscribed).Inc()
		return false
	case m.Seq <= st.last:
		e.metrics.dropped.WithLabelValues(dropDuplicate).Inc()
		return false
	}
	st.last = m.Seq
	return true
}

// resync runs after the link came back: once Redis answers commands
// again (through the breaker), for every room where this node has
// delivered something, it reads what was appended after that and
// delivers it, then calls the OnReconnect callbacks. It retries, with
// backoff, until it has read every room or the engine closes: what the
// reader receives meanwhile waits behind it.
func (e *Engine) resync(h core.Handler) {
	backoff := minBackoff
	for {
		err := e.call(e.ctx, "resync", func(ctx context.Context) error { return e.rdb.Ping(ctx).Err() })
		if err == nil {
			err = e.resyncRooms(h)
		}
		if err == nil {
			break
		}
		level := slog.LevelWarn
		if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
			level = slog.LevelDebug // Redis just came back: the breaker's probe will tell
		}
		e.log.Log(e.ctx, level, "redis: resync failed; retrying", "err", err, "in", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-e.ctx.Done():
			t.Stop()
			return
		}
		backoff = min(2*backoff, maxBackoff)
	}
	e.metrics.resyncs.Inc()
	e.cbMu.Lock()
	fns := append([]func(){}, e.reconnect...)
	e.cbMu.Unlock()
	for _, fn := range fns {
		fn()
	}
}

// resyncRooms reads up every room with a delivered seq.
func (e *Engine) resyncRooms(h core.Handler) error {
	e.rooms.mu.Lock()
	seen := make(map[string]uint64, len(e.rooms.byName))
	for name, st := range e.rooms.byName {
		if st.last > 0 {
			seen[name] = st.last
		}
	}
	e.rooms.mu.Unlock()
	for room, last := range seen {
		if err := e.resyncRoom(h, room, last); err != nil {
			return err
		}
	}
	return nil
}

// resyncRoom delivers what room holds after seen, the last seq this node
// delivered in it. A head below seen means Redis lost data: the head is
// raised to seen, so that no seq a client may have seen is handed out
// again.
func (e *Engine) resyncRoom(h core.Handler, room string, seen uint64) error {
	after := seen
	for {
		p, epoch, err := e.page(e.ctx, "resync", room, sinceRange(after, maxPage))
		if err != nil {
			return err
		}
		e.checkEpoch(room, epoch, p.Head, seen)
		if p.Head < seen {
			return e.raise(room, p.Head, seen)
		}
		var msgs []protocol.Message
		for _, m := range p.Messages {
			if e.admit(m) {
				msgs = append(msgs, m)
			}
		}
		if len(msgs) > 0 {
			h.Publish(msgs)
		}
		if len(p.Messages) == 0 || p.Messages[len(p.Messages)-1].Seq >= p.Head {
			return nil
		}
		after = p.Messages[len(p.Messages)-1].Seq
	}
}

// checkEpoch records room's epoch and reports a change: the room was
// created again (Redis lost it) since the last resync.
func (e *Engine) checkEpoch(room, epoch string, head, seen uint64) {
	e.rooms.mu.Lock()
	defer e.rooms.mu.Unlock()
	st := e.rooms.byName[room]
	if st == nil {
		return
	}
	if st.epoch != "" && epoch != st.epoch && head >= seen {
		e.log.Error("redis: room was created again since the last resync (Redis lost data); "+
			"seqs up to the one this node had seen may have been given out twice",
			"room", room, "seen", seen, "head", head)
	}
	st.epoch = epoch
}

// raise lifts room's head to seen after Redis lost data.
func (e *Engine) raise(room string, head, seen uint64) error {
	k := e.keys.room(room)
	err := e.call(e.ctx, "resync", func(ctx context.Context) error {
		return raiseScript.Run(ctx, e.rdb, []string{k.meta, k.log, k.ids}, randomHex(8), seen).Err()
	})
	if err != nil {
		return err
	}
	e.log.Error("redis: room's head is behind what this node delivered: Redis lost data; head raised so that no seq is reused",
		"room", room, "stored_head", head, "delivered", seen)
	return nil
}
