package client

import (
	"context"
	"runtime"
	"testing"
	"time"
	"unsafe"

	"github.com/chatd/chatd/core/protocol"
)

// TestQueueGrowsWithoutCopying fills a queue far past its first block:
// what a block holds stays where it was put (no block is ever copied into
// a larger one), blocks double up to maxBlock, and everything comes back
// in order.
func TestQueueGrowsWithoutCopying(t *testing.T) {
	var q envQueue
	const n = 3*maxBlock + 5
	var data []*protocol.Envelope // each block's array, as it was first filled
	for i := range n {
		e := protocol.Envelope{Type: protocol.TypeMessage, Room: "a", Seq: uint64(i + 1)}
		if empty := q.push(&e); empty != (i == 0) {
			t.Fatalf("push %d reported an empty queue before it: %v", i+1, empty)
		}
		if len(q.blocks) > len(data) {
			data = append(data, unsafe.SliceData(q.blocks[len(q.blocks)-1]))
		}
	}
	for i, blk := range q.blocks {
		if got := unsafe.SliceData(blk); got != data[i] {
			t.Fatalf("block %d moved: the queue copied it to grow", i)
		}
	}
	var b envQueue
	q.takeInto(&b)
	if q.n != 0 || len(q.blocks) != 0 || b.n != n {
		t.Fatalf("after takeInto: queue %d envelopes in %d blocks, batch %d (want 0, 0, %d)", q.n, len(q.blocks), b.n, n)
	}
	want, size := uint64(1), firstBlock
	for i, blk := range b.blocks {
		if cap(blk) != size || i < len(b.blocks)-1 && len(blk) != cap(blk) {
			t.Fatalf("block %d holds %d of %d envelopes, want a full block of %d (all but the last full)", i, len(blk), cap(blk), size)
		}
		size = min(2*size, maxBlock)
		for _, e := range blk {
			if e.Seq != want {
				t.Fatalf("envelope %d came back as seq %d", want, e.Seq)
			}
			want++
		}
	}
	if want != n+1 {
		t.Fatalf("%d envelopes came back, want %d", want-1, n)
	}
}

// TestQueueBlocksShared has a queue catch up and its blocks released:
// the queue holds none, the shared lists hold them, and a queue filled
// again takes them back (the newest first) rather than allocate. It
// reads the process-wide lists, and so is not parallel.
func TestQueueBlocksShared(t *testing.T) {
	var q envQueue
	fill := func(k int) {
		for i := range k {
			e := protocol.Envelope{Type: protocol.TypeMessage, Room: "a", Seq: uint64(i + 1)}
			q.push(&e)
		}
	}
	fill(300) // blocks of 4, 8, 16, 32, 64, 128 and 256
	var b envQueue
	q.takeInto(&b)
	released := map[*protocol.Envelope]bool{}
	for _, blk := range b.blocks {
		clear(blk) // as deliverLoop clears what it delivered
		released[unsafe.SliceData(blk)] = true
	}
	if len(released) != blockClasses {
		t.Fatalf("300 envelopes took %d blocks, want one of each of the %d sizes", len(released), blockClasses)
	}
	if blockFree[0].max < 5000 {
		t.Errorf("the list of %d-envelope blocks keeps %d, not a broadcast's wave of 5,000 clients", firstBlock, blockFree[0].max)
	}
	b.release()
	q.trim()
	if len(b.blocks) != 0 || b.n != 0 || len(q.blocks) != 0 || q.n != 0 {
		t.Fatalf("after release: the batch holds %d blocks, the queue %d", len(b.blocks), len(q.blocks))
	}
	fill(300)
	for i, blk := range q.blocks {
		if !released[unsafe.SliceData(blk)] {
			t.Fatalf("block %d (of %d envelopes) is new, not one released", i, cap(blk))
		}
		clear(blk)
	}
	q.takeInto(&b)
	b.release()
	// A block of a size no queue makes is not kept.
	odd := make([]protocol.Envelope, 1, 5)
	b.blocks = append(b.blocks, odd)
	b.release()
	for c := range blockFree {
		blockFree[c].mu.Lock()
		for _, f := range blockFree[c].free {
			if unsafe.SliceData(f) == unsafe.SliceData(odd) {
				t.Errorf("a block of %d envelopes was kept", cap(odd))
			}
		}
		blockFree[c].mu.Unlock()
	}
}

// TestArrayListBounded: a list keeps at most maxFreeArrays arrays, hands
// back the newest first, and makes a new array when it has none.
func TestArrayListBounded(t *testing.T) {
	var l arrayList
	arrays := make([][]protocol.Envelope, maxFreeArrays+3)
	for i := range arrays {
		arrays[i] = make([]protocol.Envelope, 0, 4)
		l.put(arrays[i])
	}
	if len(l.free) != maxFreeArrays {
		t.Fatalf("the list keeps %d arrays, want at most %d", len(l.free), maxFreeArrays)
	}
	for i := maxFreeArrays - 1; i >= 0; i-- {
		if got := l.get(4); unsafe.SliceData(got) != unsafe.SliceData(arrays[i]) || len(got) != 0 {
			t.Fatalf("get %d: not the array put %d (len %d)", maxFreeArrays-i, i, len(got))
		}
	}
	if got := l.get(8); cap(got) != 8 || len(got) != 0 {
		t.Fatalf("an empty list made an array of cap %d, len %d; want cap 8, len 0", cap(got), len(got))
	}
}

// TestBehindReusesQueueBlocks has the application fall behind (Deliver
// busy while more arrives): the blocks of a delivered batch go back to
// the shared lists, and the queue fills them again, instead of new ones
// being allocated and cleared for every batch; the loop then goes idle
// with everything delivered. It reads the process-wide lists, and so is
// not parallel.
func TestBehindReusesQueueBlocks(t *testing.T) {
	const n = 2*maxBlock + 3 // blocks of 4 to 256 a batch
	type call struct {
		data *protocol.Envelope
		n    int
		last uint64 // the seq of the block's last envelope
	}
	calls := make(chan call)
	release := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	c := New(Config{URL: "http://127.0.0.1:1", Deliver: func(b []protocol.Envelope) {
		select {
		case calls <- call{unsafe.SliceData(b), len(b), b[len(b)-1].Seq}:
		case <-ctx.Done():
			return
		}
		select {
		case <-release:
		case <-ctx.Done():
		}
	}})
	done := make(chan struct{})
	go func() { defer close(done); c.deliverLoop(ctx) }()
	defer func() { cancel(); <-done }()
	seq := uint64(0)
	fill := func(k int) {
		c.mu.Lock()
		defer c.mu.Unlock()
		for range k {
			seq++
			c.enqueueLocked(protocol.Envelope{Type: protocol.TypeMessage, Room: "a", Seq: seq})
		}
	}
	// recv takes Deliver's next block, which it holds until release,
	// and checks that the blocks come in order.
	next := uint64(1)
	recv := func() call {
		cl := <-calls
		if cl.last != next+uint64(cl.n)-1 {
			t.Fatalf("a block of %d ends at seq %d, want %d", cl.n, cl.last, next+uint64(cl.n)-1)
		}
		next += uint64(cl.n)
		return cl
	}
	// take receives k envelopes, holding the last block, and returns
	// the arrays of their blocks.
	take := func(k int) map[*protocol.Envelope]bool {
		got := map[*protocol.Envelope]bool{}
		for {
			cl := recv()
			got[cl.data] = true
			if k -= cl.n; k <= 0 {
				if k < 0 {
					t.Fatalf("a block went past the envelopes queued by %d", -k)
				}
				return got
			}
			release <- struct{}{}
		}
	}
	fill(1)
	take(1) // held: what comes now waits in the queue
	fill(n)
	release <- struct{}{}
	delivered := take(n) // held on its last block
	fill(n)
	release <- struct{}{}
	// The loop gives the delivered blocks to the queue and takes the
	// third batch: hold its first block.
	third := recv()
	fill(n)
	c.mu.Lock()
	reused := 0
	for _, blk := range c.queue.blocks {
		if delivered[unsafe.SliceData(blk)] {
			reused++
		}
	}
	blocks := len(c.queue.blocks)
	c.mu.Unlock()
	if reused != blocks {
		t.Fatalf("of the %d blocks the queue filled, %d were the delivered batch's", blocks, reused)
	}
	release <- struct{}{}
	if n > third.n {
		take(n - third.n)
		release <- struct{}{}
	}
	take(n)
	release <- struct{}{}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.mu.Lock()
		held := c.queue.n
		c.mu.Unlock()
		if held == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the loop still holds %d envelopes", held)
		}
		runtime.Gosched()
	}
}

// TestEventsAcrossBlocks: without Deliver, a queue of several blocks
// comes out of the Events channel whole and in order.
func TestEventsAcrossBlocks(t *testing.T) {
	const n = 2*maxBlock + 3
	ctx, cancel := context.WithCancel(context.Background())
	c := New(Config{URL: "http://127.0.0.1:1", EventBuffer: 1})
	c.mu.Lock()
	for i := range n {
		c.enqueueLocked(protocol.Envelope{Type: protocol.TypeMessage, Room: "a", Seq: uint64(i + 1)})
	}
	if len(c.queue.blocks) < 3 {
		t.Fatalf("%d envelopes in %d blocks, want at least 3", n, len(c.queue.blocks))
	}
	c.mu.Unlock()
	done := make(chan struct{})
	go func() { defer close(done); c.deliverLoop(ctx) }()
	defer func() { cancel(); <-done }()
	for want := uint64(1); want <= n; want++ {
		if e := <-c.events; e.Seq != want {
			t.Fatalf("event %d has seq %d", want, e.Seq)
		}
	}
}

// TestScratchOutgrown: a frame of more envelopes than maxScratch outgrows
// the array held and is not kept; the array held goes back to the shared
// list holding nothing of the frame (the fast decoder sizes its array
// before it writes, so done clears only what it returns).
func TestScratchOutgrown(t *testing.T) {
	data := []byte("[")
	for i := range maxScratch + 1 {
		if i > 0 {
			data = append(data, ',')
		}
		data = append(data, protocol.Encode(protocol.Envelope{Type: protocol.TypeMessage, Room: "a", Seq: uint64(i + 1), Text: "hi"})...)
	}
	data = append(data, ']')
	held := make([]protocol.Envelope, 0, 4)
	s := frameScratch(held)
	envs, err := s.decode(data, protocol.FastOptions{})
	if err != nil || len(envs) != maxScratch+1 {
		t.Fatalf("decoded %d envelopes (err %v), want %d", len(envs), err, maxScratch+1)
	}
	if unsafe.SliceData(s) != unsafe.SliceData(held) {
		t.Fatal("the outgrown frame's array was kept")
	}
	s.done(envs)
	if s != nil {
		t.Fatal("done kept the array")
	}
	for i, e := range held[:cap(held)] {
		if e.Room != "" || e.Text != "" {
			t.Fatalf("the array given back still holds envelope %d of the frame: %+v", i, e)
		}
	}
	if got := scratchFree.get(0); unsafe.SliceData(got) != unsafe.SliceData(held) {
		t.Fatal("the array held did not go back to the shared list")
	}
}
