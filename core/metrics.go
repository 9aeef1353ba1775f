package core

import "github.com/prometheus/client_golang/prometheus"

// metrics are the hub's Prometheus collectors. Static after construction.
type metrics struct {
	sessions    *prometheus.GaugeVec     // by transport
	messages    prometheus.Counter       // stored, not duplicates
	duplicates  prometheus.Counter       // idempotent re-sends answered from the store
	dropped     *prometheus.CounterVec   // frames dropped, by reason
	disconnects *prometheus.CounterVec   // by reason
	errors      *prometheus.CounterVec   // error replies, by code
	fanout      prometheus.Histogram     // seconds from commit to the last enqueue
	delivery    *prometheus.HistogramVec // seconds from fan-out to written, by transport
	replayWaits prometheus.Counter       // catch-ups that waited for a replay slot
	readFlushes prometheus.Histogram     // read positions stored per flush
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		sessions: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "chat_sessions", Help: "Open sessions by transport.",
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
			Name: "chat_disconnects_total", Help: "Sessions ended, by reason.",
		}, []string{"reason"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chat_error_replies_total", Help: "Error envelopes sent, by code.",
		}, []string{"code"}),
		fanout: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "chat_fanout_seconds",
			Help:    "Time from a message's commit to its enqueue on every local subscriber.",
			Buckets: prometheus.ExponentialBuckets(0.00005, 4, 10),
		}),
	}
	m.delivery = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "chat_delivery_seconds",
		Help:    "Time from a message's fan-out to its transport write, by transport.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 3, 12),
	}, []string{"transport"})
	m.replayWaits = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "chat_replay_waits_total",
		Help: "Catch-ups that waited for a replay slot: the node's replay budget was in use.",
	})
	m.readFlushes = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "chat_read_positions_per_flush",
		Help:    "Coalesced read positions stored per flush.",
		Buckets: prometheus.ExponentialBuckets(1, 4, 8),
	})
	reg.MustRegister(m.sessions, m.messages, m.duplicates, m.dropped, m.disconnects, m.errors, m.fanout, m.delivery,
		m.replayWaits, m.readFlushes)
	return m
}
