package core

import (
	"hash/maphash"
	"runtime"
	"time"

	"github.com/chatd/chatd/core/protocol"
)

// fanoutQueue is how many committed batches a fan-out shard holds before
// Publish waits: enough to ride out a burst, small enough that a stalled
// fan-out pushes back on the engine instead of growing the heap.
const fanoutQueue = 256

// batch is committed messages on their way to local subscribers.
type batch struct {
	msgs      []protocol.Message
	committed time.Time
}

// fanout hands committed messages from the engine to the node's
// subscribers through bounded queues, one per shard, so that an engine's
// commit path never waits on fan-out: a durable ack costs its fsync, not
// the room's size. A room always maps to the same shard, so its messages
// are offered in seq order.
type fanout struct {
	seed   maphash.Seed // Static after construction.
	shards []chan batch // Static after construction.
}

func newFanout() *fanout {
	f := &fanout{seed: maphash.MakeSeed(), shards: make([]chan batch, runtime.GOMAXPROCS(0))}
	for i := range f.shards {
		f.shards[i] = make(chan batch, fanoutQueue)
	}
	return f
}

// startFanout starts the shard goroutines, once. Called with h.mu held,
// while not closing.
func (h *Hub) startFanout() {
	if h.fanoutOn.Load() {
		return
	}
	for _, c := range h.fan.shards {
		h.bg.Add(1)
		go func() {
			defer h.bg.Done()
			for {
				select {
				case b := <-c:
					h.deliver(b)
				case <-h.stop:
					return
				}
			}
		}()
	}
	h.fanoutOn.Store(true)
}

// Publish hands committed messages to this node's subscribers. Engines
// call it after commit, in per-room seq order. It returns once the
// messages are queued for fan-out; it waits only when the fan-out queues
// are full, and never on a client. After Shutdown it drops them: no
// session is left to deliver to.
func (h *Hub) Publish(msgs []protocol.Message) {
	if len(msgs) == 0 {
		return
	}
	if !h.fanoutOn.Load() {
		h.mu.Lock()
		if !h.closing {
			h.startFanout()
		}
		h.mu.Unlock()
	}
	now := time.Now()
	// Split by shard, keeping each room's order.
	first := h.fan.shard(msgs[0].Room)
	same := true
	for _, m := range msgs[1:] {
		if h.fan.shard(m.Room) != first {
			same = false
			break
		}
	}
	if same {
		h.enqueue(first, batch{msgs: msgs, committed: now})
		return
	}
	parts := make(map[int][]protocol.Message)
	for _, m := range msgs {
		i := h.fan.shard(m.Room)
		parts[i] = append(parts[i], m)
	}
	for i, part := range parts {
		h.enqueue(i, batch{msgs: part, committed: now})
	}
}

func (f *fanout) shard(room string) int {
	if len(f.shards) == 1 {
		return 0
	}
	return int(maphash.String(f.seed, room) % uint64(len(f.shards)))
}

// enqueue queues b on shard i, waiting while it is full, until Shutdown.
func (h *Hub) enqueue(i int, b batch) {
	select {
	case h.fan.shards[i] <- b:
	case <-h.stop:
	}
}

// deliver offers a committed batch to the local subscribers.
func (h *Hub) deliver(b batch) {
	start := time.Now()
	for _, m := range b.msgs {
		if r := h.lookupRoom(m.Room); r != nil {
			r.publish(m, b.committed)
		}
	}
	d := time.Since(start)
	h.metrics.fanout.Observe(time.Since(b.committed).Seconds())
	h.counters.fanout.add(d)
}
