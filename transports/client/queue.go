package client

import (
	"sync"
	"unsafe"

	"github.com/chatd/chatd/core/protocol"
)

// envQueue holds the envelopes accepted and not yet delivered, in order,
// in blocks. A full block is followed by a new one twice the size of
// the largest so far, up to maxBlock: nothing queued is ever copied. A
// queue that grew by doubling one array copied all of it at each step,
// and an envelope is 408 bytes: in chat at 10k users, while the load
// tool's clients caught up after the server's breaker tripped, that
// growth (the copies, the allocation and clearing of each larger array)
// was a seventh of the tool's CPU. Blocks that still grew in place, from
// 4 envelopes to maxBlock, made the copying a block's worth: in the same
// catch-up (6 December, 21:00), push was 12% of the tool, its copies
// 5.7% (408-byte envelopes with pointers, copied with the collector's
// barriers while it runs).
//
// Delivered blocks go back to lists shared by every client of the
// process (blockFree), not to the client's own: a client that gets a few
// envelopes at a time takes a block and gives it back for each batch,
// allocating none, and an idle client holds no block. Blocks kept by
// each client (up to 64 envelopes' worth) were 139 MB of the load tool's
// heap at 10,000 users in chat, all of it pointers for the collector to
// mark, and the collection that marked them took the tool's core for
// seconds (7 December).
//
// The zero value is empty and ready. It is not safe for concurrent use:
// Client guards its queue with mu.
type envQueue struct {
	blocks [][]protocol.Envelope // in order; only the last may have room
	n      int                   // envelopes held
	top    int                   // the largest block filled since the queue was last empty
}

// maxBlock is the largest block: about 100 KB.
const maxBlock = 256

// firstBlock is the size of a queue's first block.
const firstBlock = 4

// push appends e. It reports whether the queue was empty before.
func (q *envQueue) push(e *protocol.Envelope) (wasEmpty bool) {
	last := len(q.blocks) - 1
	if last < 0 || len(q.blocks[last]) == cap(q.blocks[last]) {
		size := firstBlock
		if q.top > 0 {
			size = min(2*q.top, maxBlock)
		}
		b := blockFree[blockClass(size)].get(size)
		q.top = max(q.top, cap(b))
		q.blocks = append(q.blocks, b)
		last++
	}
	q.blocks[last] = append(q.blocks[last], *e)
	q.n++
	return q.n == 1
}

// takeInto moves every block into dst, which must be empty, and leaves
// the queue empty with dst's list array to fill: the two lists' arrays
// alternate, so taking allocates nothing.
func (q *envQueue) takeInto(dst *envQueue) {
	dst.blocks, q.blocks = q.blocks, dst.blocks[:0]
	dst.n, q.n = q.n, 0
	q.top = 0
}

// release gives the blocks of a delivered batch (taken by takeInto,
// cleared by the caller) back to the shared lists, and leaves the batch
// empty.
func (q *envQueue) release() {
	for i, blk := range q.blocks {
		if c := blockClass(cap(blk)); c >= 0 {
			blockFree[c].put(blk)
		}
		q.blocks[i] = nil
	}
	q.blocks, q.n = q.blocks[:0], 0
}

// trim drops, while the queue is idle, the list array of a catch-up's
// many blocks.
func (q *envQueue) trim() {
	if cap(q.blocks) > 8 {
		q.blocks = nil
	}
}

// reset empties the queue and drops its blocks.
func (q *envQueue) reset() {
	*q = envQueue{}
}

// blockClasses are the block sizes: firstBlock doubled up to maxBlock.
const blockClasses = 7

// blockClass is the index, in blockFree, of the blocks of size, or -1
// for a size that is not a block's.
func blockClass(size int) int {
	for c, s := 0, firstBlock; c < blockClasses; c, s = c+1, s*2 {
		if s == size {
			return c
		}
	}
	return -1
}

// blockFree are the free blocks of the process's clients, one list for
// each block size, each keeping up to blockFreeBytes of blocks: a room's
// message reaches thousands of a process's clients at once (a broadcast
// to 5,000 load-tool clients), and each of their readers queues it in a
// block before any of their delivery loops runs, so the lists must hold
// a wave's worth of the small blocks for the next wave to allocate none.
var blockFree [blockClasses]arrayList

func init() {
	for c, size := 0, firstBlock; c < blockClasses; c, size = c+1, size*2 {
		blockFree[c].max = max(maxFreeArrays, blockFreeBytes/(size*int(unsafe.Sizeof(protocol.Envelope{}))))
	}
}

// blockFreeBytes bounds each block size's list: 8 MB, about 5,000 blocks
// of 4 envelopes (408 bytes each), 80 of 256.
const blockFreeBytes = 8 << 20

// maxFreeArrays is the most arrays scratchFree keeps, and the least a
// block list keeps.
const maxFreeArrays = 64

// arrayList is a bounded stack of empty envelope arrays, shared by the
// clients of a process and safe for concurrent use; the zero value is
// empty and ready, and keeps up to maxFreeArrays.
type arrayList struct {
	mu   sync.Mutex
	free [][]protocol.Envelope
	max  int // the most arrays kept; 0: maxFreeArrays. Static after construction.
}

// get returns the newest array kept, or a new one of capacity size if
// there is none.
func (l *arrayList) get(size int) []protocol.Envelope {
	l.mu.Lock()
	k := len(l.free) - 1
	if k >= 0 {
		b := l.free[k]
		l.free[k] = nil
		l.free = l.free[:k]
		l.mu.Unlock()
		return b
	}
	l.mu.Unlock()
	return make([]protocol.Envelope, 0, size)
}

// put keeps b, which the caller has cleared, unless the list is full.
func (l *arrayList) put(b []protocol.Envelope) {
	limit := l.max
	if limit == 0 {
		limit = maxFreeArrays
	}
	l.mu.Lock()
	if len(l.free) < limit {
		l.free = append(l.free, b[:0])
	}
	l.mu.Unlock()
}
