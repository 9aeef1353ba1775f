package rollout

import (
	"fmt"
	"math"
	"time"
)

// The guard names, as in Check.Guard, Event.Guard and the halts metric.
const (
	GuardErrors      = "errors"
	GuardDisconnects = "disconnects"
	GuardDelivery    = "delivery"
)

// Guard is one comparison of the cohort inside the rollout with the
// cohort outside. It trips when, over the guard window, the inside value
// is above Ratio times the outside value and above Floor, both cohorts
// having at least MinSamples samples. A zero field takes the guard's
// default.
type Guard struct {
	Off        bool    `json:"off,omitempty"`         // never trips
	Ratio      float64 `json:"ratio,omitempty"`       // at least 1
	Floor      float64 `json:"floor,omitempty"`       // in the guard's unit; at least 0
	MinSamples int64   `json:"min_samples,omitempty"` // per cohort; at least 1
}

// Guards configures the three guards of a plan. The zero value takes every
// default:
//
//   - Errors: errors answered per session (sessions open at the start of
//     the window plus those opened in it); trips at 2× outside and above
//     0.05 (5 errors per 100 sessions), with 50 sessions in each cohort.
//   - Disconnects: the share of sessions that ended abnormally (any close
//     code but 1000, 1001, 4001, 4012 and 4013); trips at 2× outside and above
//     0.02 (2%), with 50 closes in each cohort.
//   - Delivery: the p99 of delivery latency, in seconds; trips at 2×
//     outside and above 0.1 (100 ms), with 500 deliveries in each cohort.
type Guards struct {
	Errors      Guard `json:"errors,omitzero"`
	Disconnects Guard `json:"disconnects,omitzero"`
	Delivery    Guard `json:"delivery,omitzero"`
}

// DefaultGuards returns the defaults described on Guards.
func DefaultGuards() Guards {
	return Guards{
		Errors:      Guard{Ratio: 2, Floor: 0.05, MinSamples: 50},
		Disconnects: Guard{Ratio: 2, Floor: 0.02, MinSamples: 50},
		Delivery:    Guard{Ratio: 2, Floor: 0.1, MinSamples: 500},
	}
}

func (g Guards) withDefaults() Guards {
	d := DefaultGuards()
	g.Errors = g.Errors.or(d.Errors)
	g.Disconnects = g.Disconnects.or(d.Disconnects)
	g.Delivery = g.Delivery.or(d.Delivery)
	return g
}

func (g Guard) or(d Guard) Guard {
	if g.Ratio == 0 {
		g.Ratio = d.Ratio
	}
	if g.Floor == 0 {
		g.Floor = d.Floor
	}
	if g.MinSamples == 0 {
		g.MinSamples = d.MinSamples
	}
	return g
}

func (g Guards) validate() error {
	for _, c := range []struct {
		name string
		g    Guard
	}{{GuardErrors, g.Errors}, {GuardDisconnects, g.Disconnects}, {GuardDelivery, g.Delivery}} {
		if err := c.g.validate("guards." + c.name); err != nil {
			return err
		}
	}
	if g.Disconnects.Floor > 1 {
		return invalid("guards.disconnects.floor", "is a share of closes, at most 1")
	}
	return nil
}

func (g Guard) validate(field string) error {
	switch {
	case !(g.Ratio >= 1) || math.IsInf(g.Ratio, 0):
		return invalid(field+".ratio", "must be at least 1")
	case !(g.Floor >= 0) || math.IsInf(g.Floor, 0):
		return invalid(field+".floor", "must be at least 0")
	case g.MinSamples < 1:
		return invalid(field+".min_samples", "must be at least 1")
	}
	return nil
}

// Check is one guard's last judgement.
type Check struct {
	Guard string `json:"guard"`
	// Inside is errors per session, the share of abnormal closes, or the
	// p99 delivery latency in seconds (the upper bound of its histogram
	// bucket, so at most 25% above the true value, alike for both cohorts).
	Inside  float64 `json:"inside"`
	Outside float64 `json:"outside"` // the same, outside the rollout
	// InsideSamples and OutsideSamples are the sessions, closes or
	// deliveries each value rests on.
	InsideSamples  int64   `json:"inside_samples"`
	OutsideSamples int64   `json:"outside_samples"`
	Verdict        Verdict `json:"verdict"`
}

// Verdict is a guard's judgement.
type Verdict string

// The verdicts of a check.
const (
	VerdictOK      Verdict = "ok"
	VerdictTripped Verdict = "tripped"
	VerdictWaiting Verdict = "waiting" // too few samples to judge; neither trips nor holds the plan back
	VerdictOff     Verdict = "off"
)

// reason says in words why c tripped, e.g. "errors inside 12.0% vs
// outside 0.4% of sessions (guard errors)".
func (c Check) reason() string {
	switch c.Guard {
	case GuardErrors:
		return fmt.Sprintf("errors inside %.1f%% vs outside %.1f%% of sessions (guard errors)",
			100*c.Inside, 100*c.Outside)
	case GuardDisconnects:
		return fmt.Sprintf("abnormal disconnects inside %.1f%% vs outside %.1f%% of closes (guard disconnects)",
			100*c.Inside, 100*c.Outside)
	default:
		return fmt.Sprintf("delivery p99 inside %v vs outside %v (guard delivery)",
			seconds(c.Inside), seconds(c.Outside))
	}
}

// seconds returns s seconds to two or three significant figures: the
// histogram behind a p99 is no finer than that.
func seconds(s float64) time.Duration {
	d := time.Duration(s * float64(time.Second))
	switch {
	case d >= 10*time.Second:
		return d.Round(time.Second)
	case d >= 10*time.Millisecond:
		return d.Round(time.Millisecond)
	}
	return d.Round(10 * time.Microsecond)
}

// cohort is the counters of one cohort, summed over its buckets.
type cohort struct {
	open, opened, closed, abnormal, errors int64
	hist                                   [histBuckets]uint64
}

// since returns what happened in c after base: the sessions seen (open at
// base, never counted below zero, plus opened since), and the rest as
// differences.
func (c *cohort) since(base *cohort) (sessions, closed, abnormal, errors int64, hist [histBuckets]uint64) {
	sessions = max(base.open, 0) + c.opened - base.opened
	closed, abnormal, errors = c.closed-base.closed, c.abnormal-base.abnormal, c.errors-base.errors
	for i := range hist {
		hist[i] = c.hist[i] - base.hist[i]
	}
	return
}

// judge compares the cohorts' activity between base and cur, [0] outside
// and [1] inside, and returns one check per guard, errors first.
func (g Guards) judge(base, cur *[2]cohort) []Check {
	var sess, closed, abn, errs [2]int64
	var p99 [2]time.Duration
	var deliv [2]int64
	for side := range 2 {
		var h [histBuckets]uint64
		sess[side], closed[side], abn[side], errs[side], h = cur[side].since(&base[side])
		p99[side], deliv[side] = quantile(&h, 0.99)
	}
	return []Check{
		g.Errors.check(GuardErrors, ratio(errs[1], sess[1]), ratio(errs[0], sess[0]), sess[1], sess[0]),
		g.Disconnects.check(GuardDisconnects, ratio(abn[1], closed[1]), ratio(abn[0], closed[0]), closed[1], closed[0]),
		g.Delivery.check(GuardDelivery, p99[1].Seconds(), p99[0].Seconds(), deliv[1], deliv[0]),
	}
}

func ratio(n, d int64) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / float64(d)
}

func (g Guard) check(name string, in, out float64, inN, outN int64) Check {
	c := Check{Guard: name, Inside: in, Outside: out, InsideSamples: inN, OutsideSamples: outN}
	switch {
	case g.Off:
		c.Verdict = VerdictOff
	case inN < g.MinSamples || outN < g.MinSamples:
		c.Verdict = VerdictWaiting
	case in > g.Ratio*out && in > g.Floor:
		c.Verdict = VerdictTripped
	default:
		c.Verdict = VerdictOK
	}
	return c
}

// tripped returns the first tripped check.
func tripped(checks []Check) (Check, bool) {
	for _, c := range checks {
		if c.Verdict == VerdictTripped {
			return c, true
		}
	}
	return Check{}, false
}
