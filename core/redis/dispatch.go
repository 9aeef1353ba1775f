package redis

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/sony/gobreaker/v2"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/protocol"
)

// dispatchBatch bounds what the dispatcher takes from the reader at once.
const dispatchBatch = 512

// dispatch is the dispatcher goroutine: it decodes what the reader
// received and hands it to the handler, in arrival order, committed
// messages batched (what arrived together, in per-room seq order). It
// handles the reader's markers in their place in that order.
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
// something else (an ephemeral or control event, a marker) must go first,
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
	for i := 0; i < len(batch); i++ {
		in := batch[i]
		switch {
		case in.lost:
			flush()
			e.pending = true
			continue
		case in.resync:
			flush()
			e.resync(h, true)
			continue
		case in.confirm != "":
			flush()
			rooms := []string{in.confirm}
			for i+1 < len(batch) && batch[i+1].confirm != "" {
				i++
				rooms = append(rooms, batch[i].confirm)
			}
			e.confirmedRooms(h, rooms)
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
			if e.admit(p.msg, true) {
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
//
// Between a lost link and its resync, a live message in a room whose
// position is known is not admitted: the resync reads it from the store,
// after what the outage hid. Admitting it would move the position past
// the gap, and the resync would start after it. A room with no known
// position yet (subscribed on the new link) takes it, as it has no gap.
func (e *Engine) admit(m protocol.Message, live bool) bool {
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
	case live && e.pending && (st.based || st.last > 0):
		e.metrics.dropped.WithLabelValues(dropResync).Inc()
		return false
	}
	st.last = m.Seq
	return true
}

// confirmedRooms reads the head of rooms whose subscription was just
// confirmed and that have no base yet: from then on every message after
// the base either arrives live or is read by a resync, so that a quiet
// room where nothing was delivered still gets what an outage hid. While a
// resync is pending it leaves them to it; if Redis does not answer it runs
// one now (which retries until it does).
func (e *Engine) confirmedRooms(h core.Handler, rooms []string) {
	if e.pending {
		return
	}
	if err := e.readBases(e.ctx, rooms); err != nil {
		e.log.Debug("redis: reading the heads of newly subscribed rooms failed; resyncing", "rooms", len(rooms), "err", err)
		e.resync(h, false)
	}
}

// readBases reads the head of each of rooms that has no base yet, in one
// pipeline, and records it as the room's base.
func (e *Engine) readBases(ctx context.Context, rooms []string) error {
	e.rooms.mu.Lock()
	var want []string
	for _, room := range rooms {
		if st := e.rooms.byName[room]; st != nil && !st.based {
			want = append(want, room)
		}
	}
	e.rooms.mu.Unlock()
	if len(want) == 0 {
		return nil
	}
	heads := make([]*goredis.StringCmd, len(want))
	err := e.call(ctx, "resync", func(ctx context.Context) error {
		_, err := e.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for i, room := range want {
				heads[i] = p.HGet(ctx, e.keys.room(room).meta, "head")
			}
			return nil
		})
		if errors.Is(err, goredis.Nil) { // a room with no messages yet
			err = nil
		}
		return err
	})
	if err != nil {
		return err
	}
	e.rooms.mu.Lock()
	defer e.rooms.mu.Unlock()
	for i, room := range want {
		head, _ := strconv.ParseUint(heads[i].Val(), 10, 64) // none yet: 0
		if st := e.rooms.byName[room]; st != nil && !st.based {
			st.base, st.based = head, true
		}
	}
	return nil
}

// resync runs after the link came back (reconnected), or when the heads
// of new rooms could not be read: once Redis answers commands again
// (through the breaker), for every subscribed room it reads what was
// appended after the room's position and delivers it, and gives the rooms
// without a base one; after a reconnect it then calls the OnReconnect
// callbacks. It retries, with backoff, until it has read every room or the
// engine closes: what the reader receives meanwhile waits behind it.
func (e *Engine) resync(h core.Handler, reconnected bool) {
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
	e.pending = false
	if !reconnected {
		return
	}
	e.metrics.resyncs.Inc()
	e.cbMu.Lock()
	fns := append([]func(){}, e.reconnect...)
	e.cbMu.Unlock()
	for _, fn := range fns {
		fn()
	}
}

// resyncRooms reads up every room with a known position, and reads the
// base of the others.
func (e *Engine) resyncRooms(h core.Handler) error {
	type position struct{ from, floor uint64 }
	e.rooms.mu.Lock()
	known := make(map[string]position, len(e.rooms.byName))
	var unbased []string
	for name, st := range e.rooms.byName {
		if st.based || st.last > 0 {
			known[name] = position{st.from(), st.floor()}
		} else {
			unbased = append(unbased, name)
		}
	}
	e.rooms.mu.Unlock()
	for room, pos := range known {
		if err := e.resyncRoom(h, room, pos.from, pos.floor); err != nil {
			return err
		}
	}
	return e.readBases(e.ctx, unbased)
}

// resyncRoom delivers what room holds after seq from. floor is the
// highest seq this node knows was handed out in room: a head below it
// means Redis lost data, and the head is raised to it, so that no seq a
// client may have seen is handed out again.
func (e *Engine) resyncRoom(h core.Handler, room string, from, floor uint64) error {
	after := from
	for {
		p, epoch, err := e.page(e.ctx, "resync", room, sinceRange(after, maxPage))
		if err != nil {
			return err
		}
		e.checkEpoch(room, epoch, p.Head, floor)
		if p.Head < floor {
			return e.raise(room, p.Head, floor)
		}
		var msgs []protocol.Message
		for _, m := range p.Messages {
			if e.admit(m, false) {
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
		return raiseScript.Run(ctx, e.rdb, []string{k.meta, k.log, k.ids, k.cur}, randomHex(8), seen).Err()
	})
	if err != nil {
		return err
	}
	e.log.Error("redis: room's head is behind what this node delivered: Redis lost data; head raised so that no seq is reused",
		"room", room, "stored_head", head, "delivered", seen)
	return nil
}
