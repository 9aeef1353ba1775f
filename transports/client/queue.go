package client

import "github.com/chatd/chatd/core/protocol"

// envQueue holds the envelopes accepted and not yet delivered, in order,
// in blocks. A block grows by append, as a slice does, until it holds
// maxBlock; then a new block follows it. A queue that grew by doubling
// one array copied all of it at each step, and an envelope is 408
// bytes: in chat at 10k users, while the load tool's clients caught up
// after the server's breaker tripped, that growth (the copies, the
// allocation and clearing of each larger array) was a seventh of the
// tool's CPU; with blocks, the whole of push is about 3%. Bounded blocks
// bound the copying to a block's growth.
//
// The zero value is empty and ready. It is not safe for concurrent use:
// Client guards its queue with mu.
type envQueue struct {
	blocks [][]protocol.Envelope // in order; only the last may have room
	free   [][]protocol.Envelope // empty blocks to fill before allocating
	n      int                   // envelopes held
}

// maxBlock is where a block stops growing: about 100 KB.
const maxBlock = 256

// push appends e. It reports whether the queue was empty before.
func (q *envQueue) push(e *protocol.Envelope) (wasEmpty bool) {
	last := len(q.blocks) - 1
	switch {
	case last < 0:
		q.blocks = append(q.blocks, q.block())
		last = 0
	case len(q.blocks[last]) < cap(q.blocks[last]):
	case cap(q.blocks[last]) < maxBlock:
		// Double the block, as append would, but never past maxBlock.
		b := q.blocks[last]
		grown := make([]protocol.Envelope, len(b), min(max(2*cap(b), 4), maxBlock))
		copy(grown, b)
		q.blocks[last] = grown
	default:
		// A full block: the queue is behind, so the next one starts at
		// maxBlock rather than growing to it.
		b := q.block()
		if b == nil {
			b = make([]protocol.Envelope, 0, maxBlock)
		}
		q.blocks = append(q.blocks, b)
		last++
	}
	q.blocks[last] = append(q.blocks[last], *e)
	q.n++
	return q.n == 1
}

// block returns an empty block: a free one (the newest freed first), or
// nil for append to allocate.
func (q *envQueue) block() []protocol.Envelope {
	k := len(q.free) - 1
	if k < 0 {
		return nil
	}
	b := q.free[k]
	q.free[k] = nil
	q.free = q.free[:k]
	return b
}

// takeInto moves every block into dst, which must be empty, and leaves
// the queue empty with dst's list array to fill, keeping its free blocks:
// the two lists' arrays alternate, so taking allocates nothing.
func (q *envQueue) takeInto(dst *envQueue) {
	dst.blocks, q.blocks = q.blocks, dst.blocks[:0]
	dst.n, q.n = q.n, 0
}

// recycle gives the blocks of a delivered batch b (taken by takeInto,
// cleared by the caller) that are worth keeping to q's free list: at most
// keep envelopes' worth of capacity in all, counting what q already has
// free. b is left empty.
func (q *envQueue) recycle(b *envQueue, keep int) {
	room := keep
	for _, f := range q.free {
		room -= cap(f)
	}
	for i, blk := range b.blocks {
		if cap(blk) <= room {
			room -= cap(blk)
			q.free = append(q.free, blk[:0])
		}
		b.blocks[i] = nil
	}
	b.blocks, b.n = b.blocks[:0], 0
}

// trim drops free blocks, while the queue is idle, down to at most
// keepQueue envelopes' worth in all: an idle client holds little, and
// one that gets a few envelopes at a time still allocates none for each.
func (q *envQueue) trim() {
	room := keepQueue
	kept := q.free[:0]
	for i, f := range q.free {
		q.free[i] = nil
		if cap(f) <= room {
			room -= cap(f)
			kept = append(kept, f)
		}
	}
	q.free = kept
	if cap(q.blocks) > 8 {
		q.blocks = nil // a catch-up's list of blocks
	}
}

// reset empties the queue and drops its blocks.
func (q *envQueue) reset() {
	*q = envQueue{}
}
