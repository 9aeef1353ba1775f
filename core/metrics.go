package core

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chatd/chatd/core/protocol"
)

// metrics are the hub's Prometheus collectors. Static after construction.
type metrics struct {
	sessions    *prometheus.GaugeVec           // connected clients, by transport (see Hub.Connections)
	connects    *prometheus.CounterVec         // sessions opened (poll: clients that became active), by transport
	messages    prometheus.Counter             // stored, not duplicates
	duplicates  prometheus.Counter             // idempotent re-sends answered from the store
	dropped     *prometheus.CounterVec         // frames dropped, by reason
	disconnects *prometheus.CounterVec         // by transport, close code and bounded reason
	errors      *prometheus.CounterVec         // error replies, by code and via
	fanout      prometheus.Histogram           // seconds from commit to the last enqueue
	delivery    *prometheus.HistogramVec       // seconds from fan-out to written, by transport
	rtt         *prometheus.HistogramVec       // client-reported round trips, by transport
	store       *prometheus.HistogramVec       // engine call latency, by op
	storeOps    map[string]prometheus.Observer // store's series by op, bound once: engine calls are hot
	replayWaits prometheus.Counter             // catch-ups that waited for a replay slot
	replays     [2]prometheus.Counter          // entries replayed, by replayMemory and replayStore
	readFlushes prometheus.Histogram           // read positions stored per flush

	// beforeScrape runs before chat_sessions is collected (the hub's poll
	// client sweep); set once by Hub.instrument.
	beforeScrape atomic.Pointer[func()]
}

// rttBuckets are chat_client_rtt_seconds's buckets, in seconds.
var rttBuckets = []float64{0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1, 2, 5, 10}

// Engine call kinds: the op label of chat_store_seconds.
const (
	opAppend   = "append"   // Append
	opRead     = "read"     // Lookup, Since, Before
	opReads    = "reads"    // SetReads, Reads: read positions
	opPresence = "presence" // the cluster's Presence and Members
)

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		sessions: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "chat_sessions",
			Help: "Connected clients by transport: open sessions, and for poll the clients that polled within twice their interval.",
		}, []string{"transport"}),
		connects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chat_connects_total", Help: "Sessions opened by transport; for poll, poll clients that became active.",
		}, []string{"transport"}),
		messages: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_messages_total", Help: "Messages stored.",
		}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_duplicate_sends_total", Help: "Sends answered from the idempotency record.",
		}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chat_dropped_frames_total",
			Help: "Frames not written, by reason. Ephemeral frames are dropped when a queue is full; " +
				"any frame is dropped from a session that is closing, and its client resumes from its cursor.",
		}, []string{"reason"}),
		disconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chat_disconnects_total",
			Help: "Sessions ended, by transport, protocol close code and reason (a fixed set); for poll, poll clients that ended.",
		}, []string{"transport", "code", "reason"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chat_error_replies_total",
			Help: `Errors answered, by protocol error code and via: "session" (an error envelope) or "http" (a REST error answer).`,
		}, []string{"code", "via"}),
		fanout: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "chat_fanout_seconds",
			Help:    "Time from a message's commit to its enqueue on every local subscriber.",
			Buckets: prometheus.ExponentialBuckets(0.00005, 4, 10),
		}),
	}
	m.delivery = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "chat_delivery_seconds",
		Help:    "Time from a message's fan-out to its transport write (for poll, to the write of the answer that carries it), by transport.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 3, 12),
	}, []string{"transport"})
	m.rtt = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "chat_client_rtt_seconds",
		Help:    "Round trips clients measured (ping to pong, send to ack) and reported, by the client's transport.",
		Buckets: rttBuckets,
	}, []string{"transport"})
	m.store = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "chat_store_seconds",
		Help:    "Engine call latency seen by the hub, by op: append, read, reads (read positions), presence.",
		Buckets: []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5},
	}, []string{"op"})
	m.storeOps = make(map[string]prometheus.Observer, 4)
	for _, op := range []string{opAppend, opRead, opReads, opPresence} {
		m.storeOps[op] = m.store.WithLabelValues(op)
	}
	m.replayWaits = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "chat_replay_waits_total",
		Help: "Catch-ups that waited for a replay slot: the node's replay budget was in use.",
	})
	replays := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "chat_replayed_entries_total",
		Help: `Log entries replayed to catching-up sessions, by where from: "memory" (a room's recent window) or "store".`,
	}, []string{"from"})
	m.replays = [2]prometheus.Counter{replays.WithLabelValues("memory"), replays.WithLabelValues("store")}
	m.readFlushes = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "chat_read_positions_per_flush",
		Help:    "Coalesced read positions stored per flush.",
		Buckets: prometheus.ExponentialBuckets(1, 4, 8),
	})
	reg.MustRegister(sweptGauge{m.sessions, m}, m.connects, m.messages, m.duplicates, m.dropped, m.disconnects,
		m.errors, m.fanout, m.delivery, m.rtt, m.store, m.replayWaits, replays, m.readFlushes)
	return m
}

// sweptGauge is chat_sessions: before each scrape it lets the hub end the
// poll clients that have lapsed, so the poll figure is exact when read.
type sweptGauge struct {
	*prometheus.GaugeVec
	m *metrics
}

func (g sweptGauge) Collect(ch chan<- prometheus.Metric) {
	if f := g.m.beforeScrape.Load(); f != nil {
		(*f)()
	}
	g.GaugeVec.Collect(ch)
}

// instrument wraps the engine's store and cluster in timers, and hooks
// the poll client sweep to scrapes. New calls it once, before the hub is
// used.
func (h *Hub) instrument() {
	m := h.metrics
	h.store = timedStore{Store: h.store, m: m, c: &h.counters}
	if h.cluster != nil {
		h.cluster = timedCluster{Cluster: h.cluster, m: m}
	}
	h.counters.polls.hub = h
	sweep := h.sweepPolls
	m.beforeScrape.Store(&sweep)
}

// Where a replay came from: the index of metrics.replays.
const (
	replayMemory = iota
	replayStore
)

// replayed counts n entries replayed from where.
func (m *metrics) replayed(where, n int) {
	if n > 0 {
		m.replays[where].Add(float64(n))
	}
}

// since observes the time since start under op.
func (m *metrics) since(op string, start time.Time) {
	m.storeOps[op].Observe(time.Since(start).Seconds())
}

// timedStore times the hub's calls to the engine's Store in
// chat_store_seconds, and its appends for the store's latency reading
// (Stats.StoreLatency: the average, and the stall watch). Methods it
// does not time pass through.
type timedStore struct {
	Store
	m *metrics
	c *counters
}

func (t timedStore) Append(ctx context.Context, msg protocol.Message) (protocol.Message, bool, error) {
	start := time.Now()
	t.c.appends.begin(start)
	defer func() { // even if Append panics: a count left up would read as a stall forever
		now := time.Now()
		t.c.appends.end(now)
		d := now.Sub(start)
		t.c.store.add(d)
		t.m.storeOps[opAppend].Observe(d.Seconds())
	}()
	return t.Store.Append(ctx, msg)
}

func (t timedStore) Lookup(ctx context.Context, room, id string) (protocol.Message, bool, error) {
	defer t.m.since(opRead, time.Now())
	return t.Store.Lookup(ctx, room, id)
}

func (t timedStore) Since(ctx context.Context, room string, after uint64, limit int) (Page, error) {
	defer t.m.since(opRead, time.Now())
	return t.Store.Since(ctx, room, after, limit)
}

func (t timedStore) Before(ctx context.Context, room string, before uint64, limit int) (Page, error) {
	defer t.m.since(opRead, time.Now())
	return t.Store.Before(ctx, room, before, limit)
}

func (t timedStore) SetReads(ctx context.Context, reads []ReadPosition) error {
	defer t.m.since(opReads, time.Now())
	return t.Store.SetReads(ctx, reads)
}

func (t timedStore) Reads(ctx context.Context, room string) (map[string]uint64, error) {
	defer t.m.since(opReads, time.Now())
	return t.Store.Reads(ctx, room)
}

// timedCluster times the cluster's presence calls in chat_store_seconds.
type timedCluster struct {
	Cluster
	m *metrics
}

func (t timedCluster) Presence(ctx context.Context, room string, changes []PresenceChange) ([]PresenceChange, int, error) {
	defer t.m.since(opPresence, time.Now())
	return t.Cluster.Presence(ctx, room, changes)
}

func (t timedCluster) Members(ctx context.Context, room string) ([]Member, error) {
	defer t.m.since(opPresence, time.Now())
	return t.Cluster.Members(ctx, room)
}
