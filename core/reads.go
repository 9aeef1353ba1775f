package core

import (
	"context"
	"sync"
	"time"

	"github.com/chatd/chatd/core/protocol"
)

// readQueue coalesces read positions. A client reports a position per
// message it shows; only the highest per user and room matters, so the
// hub keeps that and, every Config.ReadFlush, stores the batch in one
// store call and fans out, per room, one receipt envelope that carries
// every changed position. A flood of reads then costs the store at most
// one write per (room, user) per interval, and a room's members one
// receipt envelope per interval.
//
// A position is durable once flushed: a crash loses at most one interval
// of read positions, never a message.
type readQueue struct {
	hub *Hub // Static after construction.

	mu      sync.Mutex
	pending map[string]map[string]pendingRead // by room, then user; guarded by mu.
	n       int                               // positions pending; guarded by mu.
}

type pendingRead struct {
	seq     uint64
	receipt bool // fan out a receipt once stored
}

func newReadQueue(h *Hub) *readQueue {
	return &readQueue{hub: h, pending: make(map[string]map[string]pendingRead)}
}

// add records user's position seq in room and returns the highest
// position pending for them there. It starts the flusher on first use.
func (q *readQueue) add(room, user string, seq uint64, receipt bool) uint64 {
	q.hub.startReadFlush()
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.put(room, user, pendingRead{seq: seq, receipt: receipt}).seq
}

// put merges p into user's pending position in room and returns the
// result. q.mu is held.
func (q *readQueue) put(room, user string, p pendingRead) pendingRead {
	users := q.pending[room]
	if users == nil {
		users = make(map[string]pendingRead)
		q.pending[room] = users
	}
	cur, ok := users[user]
	if !ok {
		q.n++
	}
	cur.seq = max(cur.seq, p.seq)
	cur.receipt = cur.receipt || p.receipt
	users[user] = cur
	return cur
}

// overlay raises the positions in reads (one room's stored positions)
// to those pending for that room.
func (q *readQueue) overlay(room string, reads map[string]uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for user, p := range q.pending[room] {
		reads[user] = max(reads[user], p.seq)
	}
}

// readFlushTimeout bounds a periodic flush's store call. A store that
// stops answering (a stalled disk; Redis has timeouts of its own) then
// delays the positions, not the flusher for good.
const readFlushTimeout = 10 * time.Second

// flush stores every pending position in one call, then fans out their
// receipts. Positions that fail to store are logged and dropped: the
// client reports its position again as it reads on. Those of a call
// that ctx cut short go back to wait for the next flush (Shutdown's last
// one, if the hub is stopping and Shutdown's own ctx has not ended), and
// a higher position that came meanwhile wins.
func (q *readQueue) flush(ctx context.Context) {
	q.mu.Lock()
	if q.n == 0 {
		q.mu.Unlock()
		return
	}
	batch := q.pending
	reads := make([]ReadPosition, 0, q.n)
	q.pending, q.n = make(map[string]map[string]pendingRead, len(batch)), 0
	q.mu.Unlock()

	for room, users := range batch {
		for user, p := range users {
			reads = append(reads, ReadPosition{Room: room, User: user, Seq: p.seq})
		}
	}
	h := q.hub
	if err := h.store.SetReads(ctx, reads); err != nil {
		if ctx.Err() != nil {
			q.requeue(batch)
		}
		h.cfg.Logger.Error("storing read positions failed", "positions", len(reads), "err", err)
		return
	}
	h.metrics.readFlushes.Observe(float64(len(reads)))
	for room, users := range batch {
		h.fanReceipts(room, users)
	}
}

// requeue puts the positions of a flush that did not store them back
// among those pending, as add would.
func (q *readQueue) requeue(batch map[string]map[string]pendingRead) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for room, users := range batch {
		for user, p := range users {
			q.put(room, user, p)
		}
	}
}

// fanReceipts fans out one room's receipts of a flush: one envelope for
// them all (protocol.MaxBatch positions at most), so a room's readers cost
// its members one envelope per flush, not one per reader.
func (h *Hub) fanReceipts(room string, users map[string]pendingRead) {
	var reads map[string]uint64
	for user, p := range users {
		if !p.receipt {
			continue
		}
		if reads == nil {
			reads = make(map[string]uint64, min(len(users), protocol.MaxBatch))
		}
		reads[user] = p.seq
		if len(reads) == protocol.MaxBatch {
			h.broker.Broadcast(room, receiptEnvelope(room, reads))
			reads = nil
		}
	}
	if len(reads) > 0 {
		h.broker.Broadcast(room, receiptEnvelope(room, reads))
	}
}

// receiptEnvelope returns the receipt for reads (user → seq) in room: the
// plain form, with user and seq, for one position; the batched form, with
// reads, for several.
func receiptEnvelope(room string, reads map[string]uint64) protocol.Envelope {
	if len(reads) == 1 {
		for user, seq := range reads {
			return protocol.Envelope{Type: protocol.TypeReceipt, Room: room, User: user, Seq: seq}
		}
	}
	return protocol.Envelope{Type: protocol.TypeReceipt, Room: room, Reads: reads}
}

// FlushReads stores the read positions pending now and fans out their
// receipts, as the flush every Config.ReadFlush does.
func (h *Hub) FlushReads(ctx context.Context) { h.reads.flush(ctx) }

// startReadFlush starts, once, the goroutine that flushes read positions
// every Config.ReadFlush. After Shutdown, Shutdown's own final flush
// stores what is left.
func (h *Hub) startReadFlush() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.readsOn || h.closing {
		return
	}
	h.readsOn = true
	h.every(h.cfg.ReadFlush, func() {
		// Shutdown ends the context (stopCtx) as it waits for this
		// goroutine, and its last flush takes what this one did not store.
		ctx, cancel := context.WithTimeout(h.stopCtx, readFlushTimeout)
		defer cancel()
		h.reads.flush(ctx)
	})
}
