package redis

import "github.com/prometheus/client_golang/prometheus"

// Reasons for chat_redis_dropped_total.
const (
	dropQueueFull    = "queue_full"   // Broadcast or Announce found the publish queue full
	dropUnavailable  = "unavailable"  // a PUBLISH batch failed: Redis was unreachable
	dropEncode       = "encode"       // an envelope or control event did not marshal
	dropCorrupt      = "corrupt"      // a publication that does not decode
	dropDuplicate    = "duplicate"    // a message at or below the last one delivered in its room
	dropUnsubscribed = "unsubscribed" // a message for a room no longer subscribed
	dropNoHandler    = "no_handler"   // something arrived before Register
	dropClosed       = "closed"       // Broadcast or Announce after Close
	dropResync       = "resync"       // a message between a lost link and its resync: the resync reads it from the store
)

// metrics are the engine's Prometheus collectors. Static after construction.
type metrics struct {
	errors  *prometheus.CounterVec // failed calls, by operation
	resyncs prometheus.Counter     // pub/sub reconnects followed by a resync
	dropped *prometheus.CounterVec // publications not sent or not delivered, by reason
	breaker prometheus.Gauge       // 0 closed, 1 half-open, 2 open

	reaped         prometheus.Counter // dead nodes cleaned up after by this node
	reapedPresence prometheus.Counter // presence changes published while cleaning up after a node
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chat_redis_errors_total",
			Help: "Redis calls that failed, by operation (unreachable, timed out, refused by the breaker or by Redis).",
		}, []string{"op"}),
		resyncs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_redis_resyncs_total",
			Help: "Times the pub/sub link came back and the subscribed rooms were read up from the store.",
		}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chat_redis_dropped_total",
			Help: "Publications not sent or not delivered, by reason. Ephemeral events are at most once; " +
				"a committed message dropped here is still in the store and reaches clients by catch-up.",
		}, []string{"reason"}),
		breaker: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "chat_redis_breaker_state",
			Help: "The circuit breaker in front of Redis: 0 closed, 1 half-open, 2 open (calls fail fast).",
		}),
		reaped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_redis_reaped_nodes_total",
			Help: "Nodes whose lease ended that this node cleaned up after (their presence and connection counts).",
		}),
		reapedPresence: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_redis_reaped_presence_total",
			Help: "Presence changes (users going offline) published while cleaning up after a node, its own Close included.",
		}),
	}
	reg.MustRegister(m.errors, m.resyncs, m.dropped, m.breaker, m.reaped, m.reapedPresence)
	return m
}
