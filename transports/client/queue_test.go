package client

import (
	"context"
	"runtime"
	"testing"
	"time"
	"unsafe"

	"github.com/chatd/chatd/core/protocol"
)

// TestBehindReusesQueueArrays has the application fall behind (Deliver
// busy while more arrives): the array of a delivered batch goes back to
// the queue, large as it is (up to four times the batch), instead of a
// new one being allocated and cleared for every batch; once the loop is
// idle, only a small array stays.
func TestBehindReusesQueueArrays(t *testing.T) {
	const n = 4 * keepQueue
	type call struct {
		data *protocol.Envelope
		n    int
	}
	calls := make(chan call)
	release := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	c := New(Config{URL: "http://127.0.0.1:1", Deliver: func(b []protocol.Envelope) {
		select {
		case calls <- call{unsafe.SliceData(b), len(b)}:
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
	fill := func(k int) {
		c.reserve(k)
		c.mu.Lock()
		defer c.mu.Unlock()
		for i := range k {
			c.enqueueLocked(protocol.Envelope{Type: protocol.TypeMessage, Room: "a", Seq: uint64(i + 1)})
		}
	}
	fill(1)
	<-calls // held: what comes now waits in the queue
	fill(n)
	release <- struct{}{}
	big := <-calls // held again
	if big.n != n {
		t.Fatalf("second batch: %d envelopes, want %d", big.n, n)
	}
	fill(n)
	release <- struct{}{}
	if got := <-calls; got.n != n {
		t.Fatalf("third batch: %d envelopes, want %d", got.n, n)
	}
	c.mu.Lock()
	reused, capacity := unsafe.SliceData(c.queue) == big.data, cap(c.queue)
	c.mu.Unlock()
	if !reused {
		t.Fatalf("the queue has a new array of cap %d, not the delivered batch's (cap ≥ %d)", capacity, n)
	}
	release <- struct{}{}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.mu.Lock()
		capacity = cap(c.queue)
		c.mu.Unlock()
		if capacity <= keepQueue {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("idle, the queue keeps an array of cap %d (at most %d)", capacity, keepQueue)
		}
		runtime.Gosched()
	}
}
