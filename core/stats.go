package core

import (
	"sync/atomic"
	"time"
)

// Stats are the hub's load readings, for the degradation controller.
type Stats struct {
	Sessions      int           // open sessions
	SlowClosed    uint64        // sessions closed as slow consumers, ever
	WriteFailed   uint64        // sessions closed on a write failure, ever
	Dropped       uint64        // ephemeral frames dropped, ever
	FanoutLatency time.Duration // moving average of commit-to-enqueue time
	StoreLatency  time.Duration // moving average of durable append time
}

// counters feed Stats. All fields are atomics.
type counters struct {
	slow, writeFailed, dropped atomic.Uint64
	fanoutNS, storeNS          atomic.Int64 // exponentially weighted moving averages
}

// ewma folds sample into avg with weight 1/8.
func ewma(avg *atomic.Int64, sample time.Duration) {
	for {
		old := avg.Load()
		next := old + (int64(sample)-old)/8
		if avg.CompareAndSwap(old, next) {
			return
		}
	}
}

// Stats returns the hub's current load readings.
func (h *Hub) Stats() Stats {
	h.mu.Lock()
	n := len(h.sessions)
	h.mu.Unlock()
	return Stats{
		Sessions: n, SlowClosed: h.counters.slow.Load(), WriteFailed: h.counters.writeFailed.Load(),
		Dropped:       h.counters.dropped.Load(),
		FanoutLatency: time.Duration(h.counters.fanoutNS.Load()),
		StoreLatency:  time.Duration(h.counters.storeNS.Load()),
	}
}
