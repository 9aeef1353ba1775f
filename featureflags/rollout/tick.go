package rollout

import (
	"context"
	"fmt"
	"time"

	"github.com/chatd/chatd/featureflags"
)

// Tick brings the plans up to date with the store, judges the guards of
// every plan in progress on this node's traffic and, on the leader, makes
// sure each flag holds its plan's percent, halts a running plan whose
// guard tripped and steps up one whose hold has passed. Run calls it at
// every tick; tests call it with the time they want.
func (m *Manager) Tick(ctx context.Context, now time.Time) {
	m.opMu.Lock()
	defer m.opMu.Unlock()
	if err := m.syncLocked(ctx); err != nil {
		m.log.Warn("rollout: plans unavailable", "err", err)
		if !m.dirty { // unsaved plans are still this process's truth: go on with them
			return
		}
	}
	m.publishLocked() // the meter watches what was loaded
	leader, changed := m.leader(), false
	for i := range m.plans {
		p := &m.plans[i]
		if _, known := featureflags.Lookup(p.Flag); !known || !p.State.Active() {
			continue
		}
		w := m.windowLocked(p, now)
		base, cur := w.observe(now, time.Duration(p.Window))
		p.Checks = p.Guards.judge(base, cur)
		if !leader || !m.reconcileLocked(p) || p.State != Running {
			continue
		}
		if c, ok := tripped(p.Checks); ok {
			changed = m.haltLocked(p, now, c) || changed
		} else if !now.Before(p.StepStart.Add(time.Duration(p.Hold))) && w.full(now, time.Duration(p.Window)) {
			changed = m.stepLocked(p, now) || changed
		}
	}
	if changed {
		m.commitLocked(ctx)
	} else {
		m.publishLocked()
	}
}

// windowLocked returns the plan's window, a new one when the meter's watch
// or the plan's percent changed since.
func (m *Manager) windowLocked(p *Plan, now time.Time) *window {
	w := m.windows[p.Flag]
	if w == nil || w.fm != m.meter.meterOf(p.Flag) || w.percent != p.Percent {
		w = m.newWindowLocked(p, now)
	}
	return w
}

// newWindowLocked starts p's window again at now, with a first sample, so
// that judgements after a change of step never count what came before it.
func (m *Manager) newWindowLocked(p *Plan, now time.Time) *window {
	w := &window{fm: m.meter.meterOf(p.Flag), percent: p.Percent, start: now}
	if w.fm != nil {
		w.observe(now, time.Duration(p.Window))
	}
	m.windows[p.Flag] = w
	return w
}

// reconcileLocked makes sure the flag holds the plan's percent, which it
// may not after a restart, a change of leader or a failed write. It
// reports whether it does.
func (m *Manager) reconcileLocked(p *Plan) bool {
	if pct, ok := m.applied[p.Flag]; ok && pct == p.Percent {
		return true
	}
	why := fmt.Sprintf("rollout: %s plan holds %d%%", p.State, p.Percent)
	if err := m.applyLocked(p.Flag, p.Percent, why); err != nil {
		m.log.Warn("rollout: cannot set the flag; retrying at the next tick", "flag", p.Flag, "err", err)
		return false
	}
	return true
}

// haltLocked rolls p back to its last good step because c tripped. It
// reports whether it did; a flag that cannot be written is retried at the
// next tick.
func (m *Manager) haltLocked(p *Plan, now time.Time, c Check) bool {
	reason := c.reason()
	from, to := p.Percent, p.LastGood
	why := fmt.Sprintf("rollout: halted at %d%%: %s; back to %d%%", from, reason, to)
	if err := m.applyLocked(p.Flag, to, why); err != nil {
		m.log.Error("rollout: cannot roll back; retrying at the next tick", "flag", p.Flag, "err", err)
		return false
	}
	p.setStep(indexOf(p.Steps, to))
	p.State = Halted
	p.Reason = fmt.Sprintf("halted at %d%%: %s", from, reason)
	p.record(Event{At: now, Kind: "halt", Percent: to, Actor: "rollout", Guard: c.Guard, Reason: reason})
	m.newWindowLocked(p, now)
	m.metrics.halts.WithLabelValues(p.Flag, c.Guard).Inc()
	m.log.Warn("rollout: halted", "flag", p.Flag, "from", from, "to", to, "guard", c.Guard, "reason", reason)
	return true
}

// stepLocked moves p to its next step, or ends it after the last. It
// reports whether it did; a flag that cannot be written is retried at the
// next tick.
func (m *Manager) stepLocked(p *Plan, now time.Time) bool {
	next := p.Step + 1
	if next == len(p.Steps) { // the last step (below 100) has held
		p.LastGood, p.State = p.Percent, Done
		p.record(Event{At: now, Kind: "done", Percent: p.Percent, Actor: "rollout"})
		m.log.Info("rollout: done", "flag", p.Flag, "percent", p.Percent)
		return true
	}
	pct := p.Steps[next]
	why := fmt.Sprintf("rollout: step %d/%d at %d%%: %d%% held %v with the guards holding",
		next+1, len(p.Steps), pct, p.Percent, time.Duration(p.Hold))
	if err := m.applyLocked(p.Flag, pct, why); err != nil {
		m.log.Error("rollout: cannot step up; retrying at the next tick", "flag", p.Flag, "err", err)
		return false
	}
	p.LastGood = p.Percent
	p.setStep(next)
	p.StepStart = now
	p.record(Event{At: now, Kind: "step", Percent: pct, Actor: "rollout"})
	m.newWindowLocked(p, now)
	m.log.Info("rollout: stepped up", "flag", p.Flag, "percent", pct)
	if pct == 100 { // nobody is left outside to compare with: done
		p.LastGood, p.State = 100, Done
		p.record(Event{At: now, Kind: "done", Percent: pct, Actor: "rollout"})
	}
	return true
}
