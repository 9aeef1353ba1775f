package rollout

import "github.com/prometheus/client_golang/prometheus"

// metrics are the Manager's collectors. Static after construction.
type metrics struct {
	percent *prometheus.GaugeVec   // by flag
	state   *prometheus.GaugeVec   // by flag and state: 1 for the plan's state
	halts   *prometheus.CounterVec // by flag and guard
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		percent: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "chat_rollout_percent",
			Help: "The rollout percent a guarded rollout plan has set, by flag."}, []string{"flag"}),
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "chat_rollout_state",
			Help: "1 for the rollout plan's current state, 0 for the others."}, []string{"flag", "state"}),
		halts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chat_rollout_halts_total",
			Help: "Rollout plans halted by a guard, by flag and guard."}, []string{"flag", "guard"}),
	}
	reg.MustRegister(m.percent, m.state, m.halts)
	return m
}

// set shows plan p. It also creates p's halt counters at 0, so that an
// alert on their increase sees the first halt.
func (m *metrics) set(p *Plan) {
	m.percent.WithLabelValues(p.Flag).Set(float64(p.Percent))
	for _, s := range States {
		v := 0.0
		if s == p.State {
			v = 1
		}
		m.state.WithLabelValues(p.Flag, string(s)).Set(v)
	}
	for _, g := range []string{GuardErrors, GuardDisconnects, GuardDelivery} {
		m.halts.WithLabelValues(p.Flag, g)
	}
}
