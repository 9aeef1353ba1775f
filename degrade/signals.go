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
	// Escalate, when above Relief, is the level a tripped breaker asks
	// for once the signal has stayed bad for Config.EscalateAfter
	// readings in a row at Relief: the relief did not relieve.
	Escalate Level
	// AtOnce lets one reading of Config.TripAtOnce times Threshold trip
	// the breaker. Set on delivery latency, whose reading is already an
	// average over many deliveries; not on counts a single burst can swell
	// (a proxy restart's closes, a room's dropped typing), nor on store
	// latency, which reads a stall as it lasts (one append held a second
	// is not an average of many).
	AtOnce bool
	// Headroom holds the breaker's probe while the node is busy
	// (Config.ProbeBusy): set on the signals whose relief saves CPU, which
	// stepping back up spends again.
	Headroom bool
	Basis    string // how Threshold was chosen, for operators; may be empty
	Read     func() float64
}

// StatsSource is what the signals read; *core.Hub is one.
type StatsSource interface {
	Stats() core.Stats
}

// DefaultSignals returns the standard policy over c, its zero fields
// filled as Capacity documents (connections and heap from SystemCapacity's
// formulas). Each signal and why its relief relieves it:
//
//   - delivery_latency (over DeliverySLO) and ephemeral_drops (over 100 a
//     reading): level 1. Typing and receipts are most of the fan-out
//     volume and all of the droppable frames; turning them off shortens
//     every queue at once, and at level 1 writers batch harder
//     (core.Config.Relieving). When messages alone are more than the node can
//     fan out, delivery latency stays over after level 1 has acted; with
//     Config.EscalateAfter set (off by default: at 10k clients the move
//     itself was the collapse) it then escalates to level 3, skipping 2
//     (moving WebSocket clients to
//     SSE costs as much per delivery): a client that polls every 5 s
//     gets what came in that time in one answer, one write where it took
//     dozens. Measured with chat at twice a core's capacity: pinned at
//     level 3, p99 5.1 s where level 0 grew past 18 s.
//   - store_latency (over StoreSLO): level 1. Receipts are the store's
//     optional writers; the sends that remain need the store.
//   - ws_failures (over 20 a reading): level 2. Slow-consumer and
//     write-failure closes of WebSocket sessions only; moving clients to
//     SSE (simpler flow control, through more proxies) relieves these, not
//     failures of SSE or poll sessions, which level 2 would not touch.
//   - connections (open sessions, over Capacity.Connections): level 3. SSE
//     goes too and polls answer at once, so a poller holds a session and
//     a busy descriptor for one short request, not for its interval;
//     between polls it holds at most an idle keep-alive connection, which
//     the server's idle timeout closes.
//   - heap (heap objects, over Capacity.HeapBytes) and goroutines (over
//     Capacity.Goroutines): level 3. A streaming session holds its queue,
//     its transport's buffers (about 18 KiB a WebSocket session) and a
//     reader goroutine for its whole life; a short poll holds them only
//     while it is answered.
func DefaultSignals(src StatsSource, c Capacity) []Signal {
	c, basis := c.withDefaults()
	rates := &rater{prev: map[string]uint64{}}
	sigs := []Signal{
		{Name: "delivery_latency", Threshold: c.DeliverySLO.Seconds(), Relief: LevelNoReceipts, Escalate: LevelPoll, AtOnce: true, Headroom: true,
			Read: func() float64 { return src.Stats().DeliveryLatency.Seconds() }},
		{Name: "ephemeral_drops", Threshold: 100, Relief: LevelNoReceipts, Headroom: true,
			Read: func() float64 { return rates.delta("drops", src.Stats().Dropped) }},
		{Name: "store_latency", Threshold: c.StoreSLO.Seconds(), Relief: LevelNoReceipts, Headroom: true,
			Read: func() float64 { return src.Stats().StoreLatency.Seconds() }},
		{Name: "ws_failures", Threshold: 20, Relief: LevelNoWS,
			Read: func() float64 { return rates.delta("ws", src.Stats().Failures[WebSocket]) }},
		{Name: "connections", Threshold: float64(c.Connections), Relief: LevelPoll, Basis: basis.connections,
			Read: func() float64 { return float64(src.Stats().Sessions) }},
	}
	if c.HeapBytes > 0 {
		sigs = append(sigs, Signal{Name: "heap", Threshold: float64(c.HeapBytes), Relief: LevelPoll,
			Basis: basis.heap, Read: heapBytes})
	}
	if c.Goroutines > 0 {
		sigs = append(sigs, Signal{Name: "goroutines", Threshold: float64(c.Goroutines), Relief: LevelPoll,
			Read: func() float64 { return float64(runtime.NumGoroutine()) }})
	}
	return sigs
}

// capacityBasis says how the derived thresholds were chosen.
type capacityBasis struct{ connections, heap string }

// withDefaults fills c's zero fields; Connections and HeapBytes come from
// the process's limits.
func (c Capacity) withDefaults() (Capacity, capacityBasis) {
	b := capacityBasis{connections: "configured", heap: "configured"}
	if c.Connections == 0 || c.HeapBytes == 0 {
		l := readLimits()
		if c.Connections == 0 {
			c.Connections, b.connections = l.Connections()
		}
		if c.HeapBytes == 0 {
			c.HeapBytes, b.heap = l.HeapBytes()
		}
	}
	if c.DeliverySLO == 0 {
		c.DeliverySLO = 250 * time.Millisecond
	}
	if c.StoreSLO == 0 {
		c.StoreSLO = 250 * time.Millisecond
	}
	return c, b
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
