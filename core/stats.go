package core

import (
	"sync"
	"sync/atomic"
	"time"
)

// Stats are the hub's load readings, for the degradation controller.
type Stats struct {
	Sessions    int    // open sessions
	SlowClosed  uint64 // sessions closed as slow consumers, ever
	WriteFailed uint64 // sessions closed on a write failure, ever
	// Failures counts slow-consumer and write-failure closes by transport
	// name ("websocket", "sse", "poll"), ever. A poll answer that is full
	// is a normal end, not a failure, and is not counted.
	Failures        map[string]uint64
	Dropped         uint64        // ephemeral frames dropped, ever
	FanoutLatency   time.Duration // recent average of commit-to-enqueue time
	DeliveryLatency time.Duration // recent average of fan-out-to-written time
	StoreLatency    time.Duration // recent average of durable append time
}

// counters feed Stats. All fields are safe for concurrent use.
type counters struct {
	slow, writeFailed, dropped atomic.Uint64
	fanout, store, delivery    average

	failMu   sync.Mutex
	failures map[string]uint64 // by transport; guarded by failMu.
}

// fail counts a slow-consumer or write-failure close on transport.
func (c *counters) fail(transport string) {
	c.failMu.Lock()
	defer c.failMu.Unlock()
	if c.failures == nil {
		c.failures = make(map[string]uint64)
	}
	c.failures[transport]++
}

func (c *counters) failuresByTransport() map[string]uint64 {
	c.failMu.Lock()
	defer c.failMu.Unlock()
	out := make(map[string]uint64, len(c.failures))
	for k, v := range c.failures {
		out[k] = v
	}
	return out
}

// staleAfter is how long an average is believed without new samples: a
// spike followed by silence must not hold a breaker open forever.
const staleAfter = 10 * time.Second

// average is an exponentially weighted moving average (weight 1/8) that
// reads as zero once no sample has come for staleAfter.
type average struct {
	ns   atomic.Int64
	last atomic.Int64 // unix nanoseconds of the last sample
}

func (a *average) add(sample time.Duration) {
	a.last.Store(time.Now().UnixNano())
	for {
		old := a.ns.Load()
		if a.ns.CompareAndSwap(old, old+(int64(sample)-old)/8) {
			return
		}
	}
}

func (a *average) read(now time.Time) time.Duration {
	if now.UnixNano()-a.last.Load() > int64(staleAfter) {
		return 0
	}
	return time.Duration(a.ns.Load())
}

// Stats returns the hub's current load readings.
func (h *Hub) Stats() Stats {
	h.mu.Lock()
	n := len(h.sessions)
	h.mu.Unlock()
	now := time.Now()
	return Stats{
		Sessions: n, SlowClosed: h.counters.slow.Load(), WriteFailed: h.counters.writeFailed.Load(),
		Dropped:         h.counters.dropped.Load(),
		Failures:        h.counters.failuresByTransport(),
		FanoutLatency:   h.counters.fanout.read(now),
		DeliveryLatency: h.counters.delivery.read(now),
		StoreLatency:    h.counters.store.read(now),
	}
}

// drop counts one frame not written, with its reason. Only queue_full
// drops of ephemeral frames feed the ephemeral_drops signal: frames
// dropped from a closing session are resumed by its client.
func (h *Hub) drop(reason string) {
	h.metrics.dropped.WithLabelValues(reason).Inc()
	if reason == dropQueueFull {
		h.counters.dropped.Add(1)
	}
}

// Reasons a frame is not written.
const (
	dropQueueFull   = "queue_full"        // an ephemeral frame met a full queue
	dropPingFull    = "ping_queue_full"   // a heartbeat met a full queue
	dropClosing     = "session_closing"   // offered to a session that is closing
	dropClosedSlow  = "closed_slow"       // queued when the session was closed as slow
	dropClosedWrite = "closed_write_fail" // queued when a write failed
)
