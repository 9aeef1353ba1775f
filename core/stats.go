package core

import (
	"slices"
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
	DeliveryLatency time.Duration // recent average of fan-out-to-written time, less any write delay (see Session.Delivered)
	StoreLatency    time.Duration // recent average of durable append time, or how long the store has gone without an append ending while one waits, if longer
	// WritersWaiting is how many session writers wait for a slot among
	// the writers at work (Config.WritersRunning) now.
	WritersWaiting int
	// BlockedWrites counts writes that gave their writer's slot up to
	// wait for their client, whose socket was full, ever.
	BlockedWrites uint64
}

// counters feed Stats, Figures and Connections. All fields are safe for
// concurrent use.
type counters struct {
	slow, writeFailed, dropped atomic.Uint64
	blocked                    atomic.Uint64 // Stats.BlockedWrites
	waiting                    atomic.Int64  // Stats.WritersWaiting
	fanout, store, delivery    average
	appends                    stallWatch  // the store's appends in flight (timedStore)
	polls                      pollClients // the poll clients connected
	figures                    figures     // the alert figures

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

// staleAfter is how long the averages are believed without new samples:
// a spike followed by silence must not hold a breaker open forever.
// Three of the controller's readings: at 10 s, the average of the last
// deliveries of a load (700-1,060 ms in chat at 10,000, as the tool
// wound down) held the latency breaker's probe for 10 s after the load
// had gone. A node still busy delivers something every few
// milliseconds; a store that stalls with appends waiting sends no
// samples, but reads as the stall's length meanwhile (stallWatch).
const staleAfter = 3 * time.Second

// stallWatch tells how long the store has gone without an append
// ending while appends waited. The store's average gets a sample only
// when an append ends, so a store that stalls (a disk that hangs, a
// Redis that stops answering) sent none until it recovered: its reading
// stayed at its last value, the breaker could not trip during the stall,
// and once the average went stale it read 0. An append that fails or is
// given up also ends. Times are monotonic, from epoch.
type stallWatch struct {
	pending atomic.Int64
	since   atomic.Int64 // nanoseconds from epoch: the last append's end, or the first waiting one's start
}

func (w *stallWatch) begin(now time.Time) {
	if w.pending.Add(1) == 1 {
		w.since.Store(int64(now.Sub(epoch)))
	}
}

// end stores its time before it counts the append out, so that a later
// begin's 0-to-1 store comes after it.
func (w *stallWatch) end(now time.Time) {
	w.since.Store(int64(now.Sub(epoch)))
	w.pending.Add(-1)
}

// stalled is how long the store has gone without an append ending while
// one waits; 0 when none waits.
func (w *stallWatch) stalled(now time.Time) time.Duration {
	if w.pending.Load() <= 0 {
		return 0
	}
	return max(time.Duration(int64(now.Sub(epoch))-w.since.Load()), 0)
}

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
		StoreLatency:    max(h.counters.store.read(now), h.counters.appends.stalled(now)),
		WritersWaiting:  int(h.counters.waiting.Load()),
		BlockedWrites:   h.counters.blocked.Load(),
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

// figureWindow is how far back the alert figures look: the alert rules
// read their rates over five minutes. The window moves in figureSlot
// steps.
const (
	figureWindow = 5 * time.Minute
	figureSlot   = 10 * time.Second
	figureSlots  = int(figureWindow / figureSlot)
)

// Figures are the readings the alert rules watch, over the last five
// minutes, for the admin status and the ops page. They are this node's,
// from its own counts; Prometheus computes the same from the metrics.
type Figures struct {
	// AbnormalPerMin is abnormal disconnects a minute (every close code
	// but 1000, 1001, 4001, 4012 and 4013; see CleanClose), by transport.
	AbnormalPerMin map[string]float64
	// ErrorsPerMin is error replies a minute, by code, sessions and REST
	// answers together.
	ErrorsPerMin map[string]float64
	// RTTP99 is the 99th percentile of the round trips clients reported,
	// interpolated within chat_client_rtt_seconds's buckets as
	// histogram_quantile does; 0 without reports.
	RTTP99 time.Duration
	// RTTReports is how many round trips clients reported.
	RTTReports uint64
}

// Figures returns the alert figures now.
func (h *Hub) Figures() Figures { return h.counters.figures.read(h.cfg.Now()) }

// figures keeps the alert figures' events in a moving window.
type figures struct {
	mu     sync.Mutex
	closes map[string]*ring // abnormal disconnects by transport; guarded by mu.
	errors map[string]*ring // by code; guarded by mu.
	rtts   ring             // counts per rttBuckets bucket, +Inf last; guarded by mu.
}

// ring counts events in figureSlots slots of figureSlot each, width
// counts per slot; a slot is reused once it is older than the window.
type ring struct {
	slot [figureSlots]int64    // the slot number each entry holds
	n    [figureSlots][]uint64 // its counts; nil until first used
}

func slotOf(now time.Time) int64 { return now.UnixNano() / int64(figureSlot) }

// add counts one event in column i of width at now.
func (r *ring) add(now time.Time, i, width int) {
	k := slotOf(now)
	j := int(k % int64(figureSlots))
	if j < 0 {
		j += figureSlots
	}
	if r.n[j] == nil {
		r.n[j] = make([]uint64, width)
	} else if r.slot[j] != k {
		clear(r.n[j])
	}
	r.slot[j] = k
	r.n[j][i]++
}

// sum adds up the counts of the slots within the window ending at now.
func (r *ring) sum(now time.Time, width int) []uint64 {
	k := slotOf(now)
	out := make([]uint64, width)
	for j, n := range r.n {
		if n == nil || r.slot[j] > k || r.slot[j] <= k-int64(figureSlots) {
			continue
		}
		for i, v := range n {
			out[i] += v
		}
	}
	return out
}

// count adds one event to the ring of key in m, making it.
func count(m *map[string]*ring, key string, now time.Time) {
	if *m == nil {
		*m = make(map[string]*ring)
	}
	r := (*m)[key]
	if r == nil {
		r = new(ring)
		(*m)[key] = r
	}
	r.add(now, 0, 1)
}

func (f *figures) abnormal(transport string, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	count(&f.closes, transport, now)
}

func (f *figures) errorReply(code string, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	count(&f.errors, code, now)
}

func (f *figures) rtt(d time.Duration, now time.Time) {
	i, _ := slices.BinarySearch(rttBuckets, d.Seconds()) // upper bounds are inclusive
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rtts.add(now, i, len(rttBuckets)+1)
}

func (f *figures) read(now time.Time) Figures {
	f.mu.Lock()
	defer f.mu.Unlock()
	perMin := func(m map[string]*ring) map[string]float64 {
		out := make(map[string]float64, len(m))
		for k, r := range m {
			if n := r.sum(now, 1)[0]; n > 0 {
				out[k] = float64(n) / figureWindow.Minutes()
			}
		}
		return out
	}
	counts := f.rtts.sum(now, len(rttBuckets)+1)
	var total uint64
	for _, n := range counts {
		total += n
	}
	return Figures{AbnormalPerMin: perMin(f.closes), ErrorsPerMin: perMin(f.errors),
		RTTP99: quantile(0.99, counts, total), RTTReports: total}
}

// quantile estimates the q-quantile of total observations counted per
// rttBuckets bucket (+Inf last) as Prometheus's histogram_quantile does:
// linearly within the bucket that holds it, from 0 below the first; in
// the +Inf bucket, the highest finite bound.
func quantile(q float64, counts []uint64, total uint64) time.Duration {
	if total == 0 {
		return 0
	}
	rank := q * float64(total)
	var below uint64
	for i, n := range counts {
		if float64(below+n) < rank {
			below += n
			continue
		}
		if i == len(rttBuckets) {
			break
		}
		lo := 0.0
		if i > 0 {
			lo = rttBuckets[i-1]
		}
		s := lo + (rttBuckets[i]-lo)*(rank-float64(below))/float64(n)
		return time.Duration(s * float64(time.Second))
	}
	return time.Duration(rttBuckets[len(rttBuckets)-1] * float64(time.Second))
}
