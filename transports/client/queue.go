package client

import "github.com/chatd/chatd/core/protocol"

// envQueue holds the envelopes accepted and not yet delivered, in order,
// in blocks. A full block is followed by a new one twice the size of
// the largest so far, up to maxBlock (a free one first, see recycle):
// nothing queued is ever copied. A queue that grew by doubling one array copied all of it at
// each step, and an envelope is 408 bytes: in chat at 10k users, while
// the load tool's clients caught up after the server's breaker tripped,
// that growth (the copies, the allocation and clearing of each larger
// array) was a seventh of the tool's CPU. Blocks that still grew in
// place, from 4 envelopes to maxBlock, made the copying a block's worth:
// in the same catch-up (6 December, 21:00), push was 12% of the tool,
// its copies 5.7% (408-byte envelopes with pointers, copied with the
// collector's barriers while it runs).
//
// The zero value is empty and ready. It is not safe for concurrent use:
// Client guards its queue with mu.
type envQueue struct {
	blocks [][]protocol.Envelope // in order; only the last may have room
	free   [][]protocol.Envelope // empty blocks to fill before allocating
	n      int                   // envelopes held
	top    int                   // the largest block filled since the queue was last empty
}

// maxBlock is the largest block: about 100 KB.
const maxBlock = 256

// firstBlock is the size of a queue's first block, when no free one is
// at hand.
const firstBlock = 4

// push appends e. It reports whether the queue was empty before.
func (q *envQueue) push(e *protocol.Envelope) (wasEmpty bool) {
	last := len(q.blocks) - 1
	if last < 0 || len(q.blocks[last]) == cap(q.blocks[last]) {
		// A new block is twice the largest so far (a free one, whatever
		// its size, is used first): a free block smaller than those
		// before it does not restart the doubling.
		size := firstBlock
		if q.top > 0 {
			size = min(2*q.top, maxBlock)
		}
		b := q.block(size)
		q.top = max(q.top, cap(b))
		q.blocks = append(q.blocks, b)
		last++
	}
	q.blocks[last] = append(q.blocks[last], *e)
	q.n++
	return q.n == 1
}

// block returns an empty block: a free one (the newest freed first), or
// a new one of size.
func (q *envQueue) block(size int) []protocol.Envelope {
	k := len(q.free) - 1
	if k < 0 {
		return make([]protocol.Envelope, 0, size)
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
	q.top = 0
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

// trim drops free blocks, while the queue is idle, but the largest of
// at most keepQueue envelopes: an idle client holds little, and one that
// gets a few envelopes at a time still allocates none for each. (A
// catch-up's chain of blocks, 4 to 256, would otherwise leave its small
// ones, 60 envelopes' worth, with every idle client.)
func (q *envQueue) trim() {
	var keep []protocol.Envelope
	for i, f := range q.free {
		q.free[i] = nil
		if cap(f) <= keepQueue && cap(f) > cap(keep) {
			keep = f
		}
	}
	q.free = q.free[:0]
	if keep != nil {
		q.free = append(q.free, keep)
	}
	if cap(q.blocks) > 8 {
		q.blocks = nil // a catch-up's list of blocks
	}
}

// reset empties the queue and drops its blocks.
func (q *envQueue) reset() {
	*q = envQueue{}
}
