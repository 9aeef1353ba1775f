package rollout

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chatd/chatd/featureflags"
)

// Clock is the time a Manager steps by. Tests inject a manual one.
type Clock interface {
	Now() time.Time
	// NewTicker returns a channel that receives a value every d, and a
	// func that stops it.
	NewTicker(d time.Duration) (<-chan time.Time, func())
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) NewTicker(d time.Duration) (<-chan time.Time, func()) {
	t := time.NewTicker(d)
	return t.C, t.Stop
}

// Config configures a Manager. Flags is required; the zero value of every
// other field is valid.
type Config struct {
	// Flags is where the plan writes the flag's rollout: the node's
	// featureflags.Store, or the cluster's shared state.
	Flags featureflags.Writer
	// Store keeps the plans across restarts. Default: memory only.
	Store PlanStore
	// Meter is what the server feeds with user events. Default: a Meter
	// nobody feeds, so the guards never have samples to judge.
	Meter *Meter
	// Clock defaults to the real clock.
	Clock Clock
	// Tick is how often Run ticks. Default 10s. A guard window should span
	// several ticks.
	Tick time.Duration
	// Leader reports whether this node drives the plans (steps and halts
	// them). Default: always. On a cluster, only the node holding the lease
	// does; it must answer at once, without I/O.
	Leader func() bool
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Metrics registers the chat_rollout_* collectors. Default: a private
	// registry.
	Metrics prometheus.Registerer
}

// Manager runs the rollout plans: it starts, pauses, resumes and aborts
// them on request, and on each tick judges the guards of every plan in
// progress, halts a plan whose guard trips and steps up one whose hold has
// passed. Its methods are safe for concurrent use.
type Manager struct {
	flags   featureflags.Writer // static after construction
	store   PlanStore           // static after construction
	meter   *Meter              // static after construction
	clock   Clock               // static after construction
	tick    time.Duration       // static after construction
	leader  func() bool         // static after construction
	log     *slog.Logger        // static after construction
	metrics *metrics            // static after construction

	// opMu serialises operations. Each one loads the plans, changes them,
	// writes the flag and saves, so it is held across that I/O on purpose;
	// readers use view and never wait for it.
	opMu    sync.Mutex
	plans   []Plan             // guarded by opMu; sorted by flag
	dirty   bool               // guarded by opMu: plans holds changes the store has not taken
	applied map[string]int     // guarded by opMu: the percent this process last wrote, by flag
	windows map[string]*window // guarded by opMu: by flag, for plans in progress

	view atomic.Pointer[[]Plan] // what Plans returns; replaced after every operation
}

// NewManager returns a Manager. It loads no plans until its first
// operation or tick; Run ticks at once.
func NewManager(cfg Config) *Manager {
	if cfg.Flags == nil {
		panic("rollout: NewManager needs Config.Flags")
	}
	m := &Manager{flags: cfg.Flags, store: cfg.Store, meter: cfg.Meter, clock: cfg.Clock, tick: cfg.Tick,
		leader: cfg.Leader, log: cfg.Logger, applied: make(map[string]int), windows: make(map[string]*window)}
	if m.store == nil {
		m.store = &memStore{}
	}
	if m.meter == nil {
		m.meter = &Meter{}
	}
	if m.clock == nil {
		m.clock = realClock{}
	}
	if m.tick <= 0 {
		m.tick = 10 * time.Second
	}
	if m.leader == nil {
		m.leader = func() bool { return true }
	}
	if m.log == nil {
		m.log = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = prometheus.NewRegistry()
	}
	m.metrics = newMetrics(cfg.Metrics)
	m.view.Store(&[]Plan{})
	return m
}

// Plans returns every plan, in progress or finished, sorted by flag, as of
// the last operation or tick.
func (m *Manager) Plans() []Plan { return clonePlans(*m.view.Load()) }

// Load reads the plans from the store and publishes them, as a tick
// does first, without judging them or writing any flag: a node calls it
// before it serves, so that its first requests see the plans. It waits
// for the store as long as ctx allows.
func (m *Manager) Load(ctx context.Context) error {
	m.opMu.Lock()
	defer m.opMu.Unlock()
	if err := m.syncLocked(ctx); err != nil {
		return err
	}
	m.publishLocked()
	return nil
}

// Run ticks until ctx ends: once at once, then every Config.Tick.
func (m *Manager) Run(ctx context.Context) {
	c, stop := m.clock.NewTicker(m.tick)
	defer stop()
	m.Tick(ctx, m.clock.Now())
	for {
		select {
		case <-ctx.Done():
			return
		case <-c:
			m.Tick(ctx, m.clock.Now())
		}
	}
}

// Start begins a plan for req.Flag at its first step, and writes that
// rollout to the flag at once. The error is a *ValidationError (an unknown
// flag is one), wraps ErrExists (a plan for the flag is in progress), comes
// from the flag writer, or is the store's.
func (m *Manager) Start(ctx context.Context, req StartRequest, actor string) (Plan, error) {
	now := m.clock.Now()
	p, err := req.plan(now, actor)
	if err != nil {
		return Plan{}, err
	}
	m.opMu.Lock()
	defer m.opMu.Unlock()
	if err := m.syncLocked(ctx); err != nil {
		return Plan{}, err
	}
	i := m.indexLocked(p.Flag)
	if i >= 0 && m.plans[i].State.Active() {
		return Plan{}, fmt.Errorf("%w: %s is %s at %d%%", ErrExists, p.Flag, m.plans[i].State, m.plans[i].Percent)
	}
	why := fmt.Sprintf("rollout: started by %s: step 1/%d at %d%%", actor, len(p.Steps), p.Percent)
	if err := m.applyLocked(p.Flag, p.Percent, why); err != nil {
		return Plan{}, err
	}
	p.record(Event{At: now, Kind: "start", Percent: p.Percent, Actor: actor})
	if i >= 0 {
		m.plans[i] = p
	} else {
		m.plans = append(m.plans, p)
		slices.SortFunc(m.plans, func(a, b Plan) int { return cmp.Compare(a.Flag, b.Flag) })
	}
	m.log.Info("rollout: started", "flag", p.Flag, "steps", p.Steps, "hold", time.Duration(p.Hold),
		"window", time.Duration(p.Window), "actor", actor)
	m.commitLocked(ctx)
	return m.planLocked(p.Flag), nil
}

// Pause holds a running plan at its step: nothing automatic happens to it
// until Resume, and the time paused does not count toward the hold. The
// error wraps ErrNotFound or ErrState, or is the store's.
func (m *Manager) Pause(ctx context.Context, flag, actor string) (Plan, error) {
	return m.change(ctx, flag, func(p *Plan, now time.Time) error {
		if p.State != Running {
			return fmt.Errorf("%w: %s is %s, not running", ErrState, flag, p.State)
		}
		p.State, p.PausedAt = Paused, now
		p.record(Event{At: now, Kind: "pause", Percent: p.Percent, Actor: actor})
		return nil
	})
}

// Resume restarts a paused plan where it was, or retries a halted one: it
// steps up at once to the step that tripped, and the guards watch it again.
// The error wraps ErrNotFound or ErrState, comes from the flag writer, or
// is the store's.
func (m *Manager) Resume(ctx context.Context, flag, actor string) (Plan, error) {
	return m.change(ctx, flag, func(p *Plan, now time.Time) error {
		switch p.State {
		case Paused:
			p.StepStart = p.StepStart.Add(now.Sub(p.PausedAt))
		case Halted:
			next := p.Step + 1
			why := fmt.Sprintf("rollout: resumed by %s: step %d/%d at %d%%", actor, next+1, len(p.Steps), p.Steps[next])
			if err := m.applyLocked(p.Flag, p.Steps[next], why); err != nil {
				return err
			}
			p.setStep(next)
			p.StepStart = now
			m.newWindowLocked(p, now)
		default:
			return fmt.Errorf("%w: %s is %s, not paused or halted", ErrState, flag, p.State)
		}
		p.State, p.PausedAt = Running, time.Time{}
		p.record(Event{At: now, Kind: "resume", Percent: p.Percent, Actor: actor})
		return nil
	})
}

// Abort ends a plan in progress and leaves the flag at its last good step,
// or at 0 when toZero is set. The error wraps ErrNotFound or ErrState,
// comes from the flag writer, or is the store's.
func (m *Manager) Abort(ctx context.Context, flag, actor string, toZero bool) (Plan, error) {
	return m.change(ctx, flag, func(p *Plan, now time.Time) error {
		if !p.State.Active() {
			return fmt.Errorf("%w: %s is %s", ErrState, flag, p.State)
		}
		target := p.LastGood
		if toZero {
			target = 0
		}
		why := fmt.Sprintf("rollout: aborted by %s at %d%%; back to %d%%", actor, p.Percent, target)
		if err := m.applyLocked(p.Flag, target, why); err != nil {
			return err
		}
		p.setStep(indexOf(p.Steps, target))
		p.State = Aborted
		p.record(Event{At: now, Kind: "abort", Percent: p.Percent, Actor: actor})
		return nil
	})
}

// change applies fn to flag's plan, as one operation.
func (m *Manager) change(ctx context.Context, flag string, fn func(p *Plan, now time.Time) error) (Plan, error) {
	m.opMu.Lock()
	defer m.opMu.Unlock()
	if err := m.syncLocked(ctx); err != nil {
		return Plan{}, err
	}
	i := m.indexLocked(flag)
	if i < 0 {
		return Plan{}, fmt.Errorf("%w: %q", ErrNotFound, flag)
	}
	p := m.plans[i].clone()
	if err := fn(&p, m.clock.Now()); err != nil {
		return Plan{}, err
	}
	m.plans[i] = p
	m.log.Info("rollout: "+p.History[len(p.History)-1].Kind, "flag", flag, "percent", p.Percent,
		"actor", p.History[len(p.History)-1].Actor)
	m.commitLocked(ctx)
	return m.planLocked(flag), nil
}

// syncLocked brings the working copy up to date: it saves what an earlier
// save failed to store, or else loads the plans.
func (m *Manager) syncLocked(ctx context.Context) error {
	if m.dirty {
		if err := m.store.Save(ctx, m.plans); err != nil {
			return fmt.Errorf("rollout: save plans: %w", err)
		}
		m.dirty = false
		return nil
	}
	plans, err := m.store.Load(ctx)
	if err != nil {
		return fmt.Errorf("rollout: load plans: %w", err)
	}
	slices.SortFunc(plans, func(a, b Plan) int { return cmp.Compare(a.Flag, b.Flag) })
	m.plans = plans
	return nil
}

// commitLocked saves the working copy and publishes it. A failed save is
// retried at the next operation or tick; until then this process's plans
// are the truth.
func (m *Manager) commitLocked(ctx context.Context) {
	m.publishLocked()
	if err := m.store.Save(ctx, m.plans); err != nil {
		m.dirty = true
		m.log.Warn("rollout: save plans failed; retrying at the next tick", "err", err)
	}
}

// publishLocked refreshes the derived fields, the meter's watch list, the
// metrics and the view.
func (m *Manager) publishLocked() {
	var active []string
	for i := range m.plans {
		p := &m.plans[i]
		p.NextStepAt = time.Time{}
		if p.State == Running {
			p.NextStepAt = p.StepStart.Add(time.Duration(p.Hold))
		}
		if p.State.Active() {
			active = append(active, p.Flag)
		}
		m.metrics.set(p)
	}
	m.meter.watch(active)
	for f := range m.windows {
		if !slices.Contains(active, f) {
			delete(m.windows, f)
		}
	}
	v := clonePlans(m.plans)
	m.view.Store(&v)
}

func (m *Manager) indexLocked(flag string) int {
	return slices.IndexFunc(m.plans, func(p Plan) bool { return p.Flag == flag })
}

func (m *Manager) planLocked(flag string) Plan {
	return m.plans[m.indexLocked(flag)].clone()
}

// applyLocked writes percent to the flag, enabled, on behalf of actor,
// whose words the flags audit log keeps.
func (m *Manager) applyLocked(flag string, percent int, actor string) error {
	if _, err := m.flags.Update(flag, true, percent, actor); err != nil {
		delete(m.applied, flag)
		return err
	}
	m.applied[flag] = percent
	return nil
}
