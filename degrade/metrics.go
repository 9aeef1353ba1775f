package degrade

import "github.com/prometheus/client_golang/prometheus"

// metrics are the controller's collectors. Static after construction.
type metrics struct {
	level       prometheus.Gauge
	auto        prometheus.Gauge       // this node's own auto level
	floor       prometheus.Gauge       // the cluster's floor under it
	mode        *prometheus.GaugeVec   // 1 for the mode in force
	breaker     *prometheus.GaugeVec   // 0 closed, 1 half-open, 2 open
	transitions *prometheus.CounterVec // by from, to and who
	busy        prometheus.Gauge       // Config.Busy's last reading
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		level: prometheus.NewGauge(prometheus.GaugeOpts{Name: "chat_degrade_level", Help: "Degradation level in force (0-3)."}),
		auto: prometheus.NewGauge(prometheus.GaugeOpts{Name: "chat_degrade_auto_level",
			Help: "This node's own auto level: what its breakers ask for (0-3)."}),
		floor: prometheus.NewGauge(prometheus.GaugeOpts{Name: "chat_degrade_floor",
			Help: "The highest auto level of the other live nodes (0-3); 0 on one node."}),
		mode: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "chat_degrade_mode",
			Help: "1 for the mode in force."}, []string{"mode"}),
		breaker: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "chat_breaker_state",
			Help: "Breaker state: 0 closed, 1 half-open, 2 open."}, []string{"breaker"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chat_degrade_transitions_total",
			Help: "Level changes by from, to and who made them."}, []string{"from", "to", "by"}),
		busy: prometheus.NewGauge(prometheus.GaugeOpts{Name: "chat_degrade_busy",
			Help: "CPU the node used in the controller's last tick, as a fraction of the cores it may use."}),
	}
	reg.MustRegister(m.level, m.auto, m.floor, m.mode, m.breaker, m.transitions, m.busy)
	return m
}

func (m *metrics) set(l Level, mode Mode) {
	m.level.Set(float64(l))
	for _, md := range []Mode{Manual, Auto} {
		v := 0.0
		if md == mode {
			v = 1
		}
		m.mode.WithLabelValues(string(md)).Set(v)
	}
}
