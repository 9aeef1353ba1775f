package degrade

import (
	"runtime"
	rtmetrics "runtime/metrics"
	"sync"
	"time"

	"github.com/chatd/chatd/core"
)

// Signal is one load reading and the level that relieves it. Read is
// called once per tick from the controller's goroutine.
type Signal struct {
	Name      string
	Threshold float64 // a reading at or over this is bad
	Relief    Level   // the level a tripped breaker asks for
	Read      func() float64
}

// Capacity is what this node is sized for. Zero fields disable the signal.
type Capacity struct {
	Connections int           // open sessions; 9000 (the open-files limit allows about 10k)
	HeapBytes   uint64        // live heap; 0 disables
	Goroutines  int           // 0 disables
	DeliverySLO time.Duration // time from fan-out to the transport write; 250ms
	StoreSLO    time.Duration // durable append latency; 250ms
}

// StatsSource is what the signals read; *core.Hub is one.
type StatsSource interface {
	Stats() core.Stats
}

// DefaultSignals returns the standard policy:
//   - delivery latency over the SLO, or ephemeral drops: level 1 (fewer events);
//   - WebSocket slow-consumer evictions and write failures: level 2 (off WebSocket);
//   - connections, heap or goroutines near capacity: level 3 (fewer held connections).
//   - store latency over the SLO: level 1 (receipts are the store's optional writers).
func DefaultSignals(src StatsSource, c Capacity) []Signal {
	if c.Connections == 0 {
		c.Connections = 9000
	}
	if c.DeliverySLO == 0 {
		c.DeliverySLO = 250 * time.Millisecond
	}
	if c.StoreSLO == 0 {
		c.StoreSLO = 250 * time.Millisecond
	}
	rates := &rater{prev: map[string]uint64{}}
	sigs := []Signal{
		{Name: "delivery_latency", Threshold: c.DeliverySLO.Seconds(), Relief: LevelNoReceipts,
			Read: func() float64 { return src.Stats().DeliveryLatency.Seconds() }},
		{Name: "ephemeral_drops", Threshold: 100, Relief: LevelNoReceipts,
			Read: func() float64 { return rates.delta("drops", src.Stats().Dropped) }},
		{Name: "store_latency", Threshold: c.StoreSLO.Seconds(), Relief: LevelNoReceipts,
			Read: func() float64 { return src.Stats().StoreLatency.Seconds() }},
		{Name: "ws_failures", Threshold: 20, Relief: LevelNoWS,
			Read: func() float64 {
				s := src.Stats()
				return rates.delta("ws", s.SlowClosed+s.WriteFailed)
			}},
		{Name: "connections", Threshold: float64(c.Connections), Relief: LevelPoll,
			Read: func() float64 { return float64(src.Stats().Sessions) }},
	}
	if c.HeapBytes > 0 {
		sigs = append(sigs, Signal{Name: "heap", Threshold: float64(c.HeapBytes), Relief: LevelPoll, Read: heapBytes})
	}
	if c.Goroutines > 0 {
		sigs = append(sigs, Signal{Name: "goroutines", Threshold: float64(c.Goroutines), Relief: LevelPoll,
			Read: func() float64 { return float64(runtime.NumGoroutine()) }})
	}
	return sigs
}

// rater turns monotonic counters into per-reading deltas.
type rater struct {
	mu   sync.Mutex
	prev map[string]uint64
}

func (r *rater) delta(name string, v uint64) float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	p, seen := r.prev[name]
	r.prev[name] = v
	if !seen || v < p {
		return 0
	}
	return float64(v - p)
}

func heapBytes() float64 {
	s := []rtmetrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	rtmetrics.Read(s)
	if s[0].Value.Kind() != rtmetrics.KindUint64 {
		return 0
	}
	return float64(s[0].Value.Uint64())
}
