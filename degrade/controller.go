package degrade

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"
)

// Mode says who sets the level.
type Mode string

// The modes.
const (
	Manual Mode = "manual" // pinned by an operator
	Auto   Mode = "auto"   // set by the breakers
)

// Change is one level or mode change, with who or what made it.
type Change struct {
	From, To Level
	Mode     Mode
	By       string // "admin:alice", "breaker:ws_failures", "expiry", "cluster:<node>"
	At       time.Time
	// Remote marks a change this node applied from the cluster (ApplyPin,
	// SetFloor) rather than made itself (SetManual, SetAuto, its breakers,
	// a pin's expiry): a bridge that shares local changes does not echo
	// it back.
	Remote bool
}

// ErrBadLevel is returned for a level outside 0–3.
var ErrBadLevel = errors.New("degrade: level must be 0 to 3")

// Config configures a Controller. The zero value is valid: auto mode with
// no signals stays at level 0.
type Config struct {
	Signals   []Signal      // auto mode's inputs
	Tick      time.Duration // how often signals are read; 1s
	TripAfter uint32        // consecutive bad readings that trip a breaker; 3
	// TripAtOnce trips the breaker of a signal marked AtOnce on one
	// reading at least this many times its threshold, without waiting for
	// TripAfter readings: the node is then already far behind, and each
	// reading more at the lower level adds to the backlog the relief must
	// drain. 4; at least 1; negative: never.
	TripAtOnce     float64
	BreakerTimeout time.Duration // how long a tripped breaker holds before probing; 30s
	ProbeReadings  uint32        // good readings in half-open that close a breaker; 5
	// Busy reads how busy the node has been since its last reading, as a
	// fraction of the CPU it may use (ProcessBusy); Step reads it once a
	// tick. nil: never read, and no probe is held (ProbeBusy).
	Busy func() float64
	// ProbeBusy holds the probe of a breaker whose signal is marked
	// Headroom while Busy reads at or over it (or the signal is still
	// over its threshold; see breaker.hold). Such a signal's relief
	// saves CPU, and the probe spends it again: a node short of that much
	// headroom would be back over within seconds, trip again, and add a
	// backlog for its clients to wait out. 0.5; negative: never hold.
	ProbeBusy float64
	// ProbeWait is the longest a probe is held for headroom; after it the
	// probe goes ahead whatever Busy reads, so a node busy for some other
	// reason still steps back up in time. 3×BreakerTimeout.
	ProbeWait time.Duration
	// EscalateAfter is how many bad readings in a row, while a breaker is
	// tripped, escalate its signal's relief to Signal.Escalate; 0: never
	// (the default; see docs/OPERATIONS.md, "The auto policy", for why).
	EscalateAfter int
	StepDown      time.Duration // least time between two downward steps; 10s
	Now           func() time.Time
	Logger        *slog.Logger
	Metrics       prometheus.Registerer // nil: a private registry
}

// Controller holds the level. Its methods are safe for concurrent use.
type Controller struct {
	cfg      Config     // Static after construction.
	breakers []*breaker // Set before Run, by New and AddSignals.
	metrics  *metrics   // Static after construction.

	mu       sync.Mutex
	level    atomic.Int32         // in force: the pin, or max(own, floor). Written under mu; Level reads it without.
	own      Level                // this node's auto level (breakers, step-down). Guarded by mu.
	ownAt    time.Time            // when own last changed. Guarded by mu.
	floor    Level                // the cluster's floor under own, auto mode only. Guarded by mu.
	mode     Mode                 // Guarded by mu.
	until    time.Time            // manual pin expiry; zero: none. Guarded by mu.
	pin      Pin                  // the last operator decision. Guarded by mu.
	lastStep time.Time            // last change of level or own. Guarded by mu.
	subs     map[chan Change]bool // Guarded by mu.
	autoSubs map[chan Change]bool // own-level subscribers. Guarded by mu.
	history  []Change             // newest last, bounded. Guarded by mu.
}

// New returns a controller in auto mode at level 0.
func New(cfg Config) *Controller {
	if cfg.Tick <= 0 {
		cfg.Tick = time.Second
	}
	if cfg.TripAfter == 0 {
		cfg.TripAfter = 3
	}
	if cfg.TripAtOnce == 0 {
		cfg.TripAtOnce = 4
	}
	if cfg.TripAtOnce > 0 && cfg.TripAtOnce < 1 {
		cfg.TripAtOnce = 1
	}
	if cfg.BreakerTimeout <= 0 {
		cfg.BreakerTimeout = 30 * time.Second
	}
	if cfg.ProbeReadings == 0 {
		cfg.ProbeReadings = 5
	}
	if cfg.ProbeBusy == 0 {
		cfg.ProbeBusy = 0.5
	}
	if cfg.ProbeWait <= 0 {
		cfg.ProbeWait = 3 * cfg.BreakerTimeout
	}
	if cfg.StepDown <= 0 {
		cfg.StepDown = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = prometheus.NewRegistry()
	}
	c := &Controller{cfg: cfg, mode: Auto, pin: Pin{Mode: Auto}, metrics: newMetrics(cfg.Metrics),
		subs: make(map[chan Change]bool), autoSubs: make(map[chan Change]bool)}
	for _, s := range cfg.Signals {
		c.breakers = append(c.breakers, newBreaker(s, cfg))
	}
	c.metrics.set(c.Level(), c.mode)
	return c
}

// AddSignals adds auto-mode inputs. Call it before Run.
func (c *Controller) AddSignals(sigs ...Signal) {
	for _, s := range sigs {
		c.breakers = append(c.breakers, newBreaker(s, c.cfg))
	}
}

// Level returns the level in force.
func (c *Controller) Level() Level {
	return Level(c.level.Load())
}

// Mode returns who sets the level, and when a manual pin expires (zero: never).
func (c *Controller) Mode() (Mode, time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mode, c.until
}

// SetManual pins the level. A positive d makes the pin expire, after which
// the controller returns to auto mode.
func (c *Controller) SetManual(l Level, d time.Duration, by string) error {
	if l < 0 || l > MaxLevel {
		return ErrBadLevel
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.cfg.Now()
	c.pin = Pin{Mode: Manual, Level: l, By: by, At: c.decisionAtLocked(now)}
	if d > 0 {
		c.pin.Until = now.Add(d)
	}
	c.mode, c.until = Manual, c.pin.Until
	c.setLocked(l, by, true, false)
	return nil
}

// SetAuto hands the level back to the breakers; it moves at the next tick,
// starting from the level in force.
func (c *Controller) SetAuto(by string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pin = Pin{Mode: Auto, By: by, At: c.decisionAtLocked(c.cfg.Now())}
	c.toAutoLocked(by, false)
}

// decisionAtLocked stamps a decision made here: now, or just after the
// one it replaces if that one is stamped later (another node's clock
// running ahead), so that it wins on every node (see ApplyPin).
func (c *Controller) decisionAtLocked(now time.Time) time.Time {
	if !now.After(c.pin.At) {
		return c.pin.At.Add(time.Nanosecond)
	}
	return now
}

// toAutoLocked leaves manual mode, if in it: this node's auto level starts
// from the level in force, so it steps down from a pin as from a trip.
// It announces the mode even when nothing changes.
func (c *Controller) toAutoLocked(by string, remote bool) {
	if c.mode == Manual {
		c.mode, c.until = Auto, time.Time{}
		c.moveOwnLocked(c.Level(), by)
	}
	c.setLocked(max(c.own, c.floor), by, true, remote)
}

// setLocked changes the level, logs, counts and tells subscribers. force
// announces even an unchanged level (a mode change); remote marks a change
// applied from the cluster.
func (c *Controller) setLocked(l Level, by string, force, remote bool) {
	from := c.Level()
	if l == from && !force {
		return
	}
	ch := Change{From: from, To: l, Mode: c.mode, By: by, At: c.cfg.Now(), Remote: remote}
	if l != from {
		c.lastStep = ch.At
		c.metrics.transitions.WithLabelValues(fmt.Sprint(int(ch.From)), fmt.Sprint(int(l)), byKind(by)).Inc()
	}
	c.level.Store(int32(l))
	c.metrics.set(l, c.mode)
	attrs := []any{"from", int(ch.From), "to", int(l), "mode", string(c.mode), "by", by}
	if remote {
		attrs = append(attrs, "remote", true)
	}
	c.cfg.Logger.Info("degradation level", attrs...)
	c.history = append(c.history, ch)
	if len(c.history) > 100 {
		c.history = c.history[len(c.history)-100:]
	}
	for sub := range c.subs {
		send(sub, ch)
	}
}

// send gives sub ch without blocking. A full sub loses its oldest change
// instead: a subscriber that lags loses intermediate changes, never the
// latest. Called with mu held, so no other send can refill the room made.
func send(sub chan Change, ch Change) {
	select {
	case sub <- ch:
		return
	default:
	}
	select {
	case <-sub:
	default:
	}
	select {
	case sub <- ch:
	default:
	}
}

// Subscribe returns a channel of changes and a cancel func. The channel
// holds up to 16 changes; a subscriber that lags loses intermediate
// changes, never the latest. cancel unsubscribes and closes the channel,
// so a receive after it reports ok == false; it is idempotent and safe to
// call from any goroutine.
func (c *Controller) Subscribe() (<-chan Change, func()) { return c.subscribe(c.subs) }

// subscribe adds a channel to set, one of the subscriber sets.
func (c *Controller) subscribe(set map[chan Change]bool) (<-chan Change, func()) {
	ch := make(chan Change, 16)
	c.mu.Lock()
	set[ch] = true
	c.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			// Changes are sent under mu, so closing under mu after the
			// delete can never race a send.
			c.mu.Lock()
			delete(set, ch)
			close(ch)
			c.mu.Unlock()
		})
	}
}

// History returns recent changes, oldest first.
func (c *Controller) History() []Change {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Change(nil), c.history...)
}

// Run reads the signals every Tick until ctx ends.
func (c *Controller) Run(ctx context.Context) {
	t := time.NewTicker(c.cfg.Tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.Step()
		}
	}
}

// Step reads every signal once and moves the level. Run calls it per
// tick; tests call it directly.
func (c *Controller) Step() {
	target, by := LevelNormal, "breakers"
	busy := 0.0
	if c.cfg.Busy != nil {
		busy = c.cfg.Busy()
		c.metrics.busy.Set(busy)
	}
	now := c.cfg.Now()
	for _, b := range c.breakers {
		if d := b.observe(busy, now); d > target {
			target, by = d, "breaker:"+b.signal.Name
		}
		c.metrics.breaker.WithLabelValues(b.signal.Name).Set(float64(b.cb.State()))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now = c.cfg.Now()
	if c.mode == Manual {
		if c.until.IsZero() || now.Before(c.until) {
			return
		}
		c.toAutoLocked("expiry", false)
	}
	switch {
	case target > c.own:
		c.stepOwnLocked(target, by)
	case target < c.own && now.Sub(c.lastStep) >= c.cfg.StepDown:
		c.stepOwnLocked(c.own-1, "recovery") // one step at a time
	}
}

// stepOwnLocked moves this node's auto level by its breakers' verdict, and
// the level in force with it (never below the floor).
func (c *Controller) stepOwnLocked(l Level, by string) {
	c.moveOwnLocked(l, by)
	c.lastStep = c.ownAt
	c.setLocked(max(l, c.floor), by, false, false)
}

// moveOwnLocked sets this node's auto level and tells its subscribers.
func (c *Controller) moveOwnLocked(l Level, by string) {
	if l == c.own {
		return
	}
	ch := Change{From: c.own, To: l, Mode: Auto, By: by, At: c.cfg.Now()}
	c.own, c.ownAt = l, ch.At
	c.metrics.auto.Set(float64(l))
	c.cfg.Logger.Debug("degradation auto level", "from", int(ch.From), "to", int(l), "by", by)
	for sub := range c.autoSubs {
		send(sub, ch)
	}
}

// BreakerStatus is one breaker as the admin API shows it.
type BreakerStatus struct {
	Name      string  `json:"name"`
	State     string  `json:"state"`
	Value     float64 `json:"value"`
	Threshold float64 `json:"threshold"`
	Relief    int     `json:"relief"`         // the level it asks for while open: Signal.Relief, or Signal.Escalate once escalated
	Held      bool    `json:"held,omitempty"` // half-open, its probe held until the node has headroom and the reading is under the threshold (Config.ProbeBusy)
	// TripsAtOnce is the reading that trips the breaker at once
	// (Config.TripAtOnce times the threshold); 0: none, it waits for
	// Config.TripAfter readings.
	TripsAtOnce float64 `json:"trips_at_once,omitempty"`
	// ProbeBusy is the share of the node's CPU at or over which its probe
	// is held (Config.ProbeBusy); 0: never held for the node's load.
	ProbeBusy float64 `json:"probe_busy,omitempty"`
	Basis     string  `json:"basis,omitempty"` // how the threshold was chosen
}

// Breakers returns every breaker's state, last reading and effective
// threshold, with how that threshold was chosen: the admin status and the
// ops page show them as they are.
func (c *Controller) Breakers() []BreakerStatus {
	out := make([]BreakerStatus, 0, len(c.breakers))
	for _, b := range c.breakers {
		out = append(out, b.status())
	}
	return out
}

func byKind(by string) string {
	for i := 0; i < len(by); i++ {
		if by[i] == ':' {
			return by[:i]
		}
	}
	return by
}

// breaker wraps one signal in a two-step circuit breaker. While it is
// open, a signal that stays over its threshold without falling by a tenth
// for escalateAfter readings in a row raises the relief asked for from
// Signal.Relief to Signal.Escalate, until the breaker closes again.
type breaker struct {
	signal        Signal                                     // Static after construction.
	cb            *gobreaker.TwoStepCircuitBreaker[struct{}] // Static after construction.
	escalateAfter int                                        // Static after construction.
	trip          uint32                                     // Config.TripAfter. Static after construction.
	atOnce        float64                                    // Config.TripAtOnce if the signal is AtOnce, else -1. Static after construction.
	probeBusy     float64                                    // Config.ProbeBusy if the signal is Headroom, else -1. Static after construction.
	probeWait     time.Duration                              // Config.ProbeWait. Static after construction.

	mu     sync.Mutex
	last   float64 // Guarded by mu.
	relief Level   // the level asked for while open; guarded by mu
	ref    float64 // the reading the next ones are held against while open; 0: none; guarded by mu
	bad    int     // readings in a row, while open, over and not falling below 0.9·ref; guarded by mu
	// The probe's hold, in half-open: since when it has been held (zero:
	// not held), and whether the probe has begun, after which it is never
	// held again until the breaker leaves half-open. Guarded by mu.
	heldFrom time.Time
	probing  bool
	open     bool // the last reading left the breaker open, or its probe held; guarded by mu
}

var errOver = errors.New("degrade: signal over threshold")

func newBreaker(s Signal, cfg Config) *breaker {
	trip := cfg.TripAfter
	atOnce, probeBusy := cfg.TripAtOnce, cfg.ProbeBusy
	if !s.AtOnce {
		atOnce = -1
	}
	if !s.Headroom || cfg.Busy == nil {
		probeBusy = -1
	}
	return &breaker{signal: s, relief: s.Relief, escalateAfter: cfg.EscalateAfter, trip: trip, atOnce: atOnce,
		probeBusy: probeBusy, probeWait: cfg.ProbeWait, cb: gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
			Name:        s.Name,
			MaxRequests: cfg.ProbeReadings,
			Interval:    time.Minute, // counts must not grow forever (0 never clears them)
			Timeout:     cfg.BreakerTimeout,
			ReadyToTrip: func(n gobreaker.Counts) bool { return n.ConsecutiveFailures >= trip },
		})}
}

// observe reads the signal, reports it to the breaker and returns the
// level this breaker asks for: its relief (escalated or not) while open
// and while its probe is held, one less while probing, none while closed.
// busy is the node's Busy reading for this tick, now its time.
func (b *breaker) observe(busy float64, now time.Time) Level {
	v := b.signal.Read()
	over := v >= b.signal.Threshold
	// State moves an open breaker whose timeout is over to half-open. A
	// held probe is not reported: the breaker stays half-open, and asks
	// for its relief as if open.
	probing := b.cb.State() == gobreaker.StateHalfOpen
	held := probing && b.hold(busy, over, now)
	probing = probing && !held // this reading is a probe's
	if !held {
		if done, err := b.cb.Allow(); err == nil {
			if over {
				done(errOver)
			} else {
				done(nil)
			}
		}
	}
	if over && b.atOnce > 0 && v >= b.atOnce*b.signal.Threshold {
		// Far over: count it as the readings that trip.
		for i := uint32(1); i < b.trip && b.cb.State() == gobreaker.StateClosed; i++ {
			if done, err := b.cb.Allow(); err == nil {
				done(errOver)
			}
		}
	}
	state := b.cb.State()
	open := state == gobreaker.StateOpen || held
	b.mu.Lock()
	defer b.mu.Unlock()
	b.last = v
	wasOpen := b.open
	b.open = open
	if state != gobreaker.StateHalfOpen {
		b.heldFrom, b.probing = time.Time{}, false
	}
	switch {
	case state == gobreaker.StateClosed:
		b.relief, b.bad = b.signal.Relief, 0
	case open && (!wasOpen || probing):
		b.ref, b.bad = v, 0 // the trip, or a failed probe
	case open:
		// Not relieved: still over, and not falling by a tenth from the
		// reference (a backlog built before the trip that drains is the
		// relief at work).
		switch {
		case !over:
			b.ref, b.bad = 0, 0
		case b.ref == 0 || v < 0.9*b.ref: // over again, or falling
			b.ref, b.bad = v, 0
		default:
			if b.bad++; b.escalateAfter > 0 && b.bad >= b.escalateAfter && b.signal.Escalate > b.relief {
				b.relief, b.bad = b.signal.Escalate, 0
			}
		}
	}
	switch {
	case open:
		return b.relief
	case state == gobreaker.StateHalfOpen:
		return b.relief - 1
	}
	return LevelNormal
}

// hold reports whether a half-open breaker's probe waits this tick: while
// the node is busy (busy at or over probeBusy) or the signal still over
// its threshold, for at most probeWait. A probe that began at either
// would fail within seconds, and a failed probe holds the relief a whole
// breaker timeout more, where a held one begins as soon as both have
// come down (a reading over just after the load ends, the last
// deliveries' average, failed the probe and kept level 1 for 30 s more).
// Once the probe begins it is never held again, so the work it adds back
// cannot hold it and step the level back down.
func (b *breaker) hold(busy float64, over bool, now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.probeBusy < 0 || b.probing {
		return false
	}
	if b.heldFrom.IsZero() {
		b.heldFrom = now
	}
	if (busy < b.probeBusy && !over) || now.Sub(b.heldFrom) >= b.probeWait {
		b.heldFrom, b.probing = time.Time{}, true
		return false
	}
	return true
}

func (b *breaker) status() BreakerStatus {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := BreakerStatus{Name: b.signal.Name, State: b.cb.State().String(), Value: b.last,
		Threshold: b.signal.Threshold, Relief: int(b.relief), Basis: b.signal.Basis,
		Held: !b.heldFrom.IsZero()}
	if b.atOnce > 0 {
		st.TripsAtOnce = b.atOnce * b.signal.Threshold
	}
	if b.probeBusy > 0 {
		st.ProbeBusy = b.probeBusy
	}
	return st
}
