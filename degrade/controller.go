package degrade

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
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
	By       string // "admin:alice", "breaker:ws_failures", "expiry"
	At       time.Time
}

// ErrBadLevel is returned for a level outside 0–3.
var ErrBadLevel = errors.New("degrade: level must be 0 to 3")

// Config configures a Controller. The zero value is valid: auto mode with
// no signals stays at level 0.
type Config struct {
	Signals        []Signal      // auto mode's inputs
	Tick           time.Duration // how often signals are read; 1s
	TripAfter      uint32        // consecutive bad readings that trip a breaker; 3
	BreakerTimeout time.Duration // how long a tripped breaker holds before probing; 30s
	ProbeReadings  uint32        // good readings in half-open that close a breaker; 5
	StepDown       time.Duration // least time between two downward steps; 10s
	Now            func() time.Time
	Logger         *slog.Logger
	Metrics        prometheus.Registerer // nil: a private registry
}

// Controller holds the level. Its methods are safe for concurrent use.
type Controller struct {
	cfg      Config     // Static after construction.
	breakers []*breaker // Set before Run, by New and AddSignals.
	metrics  *metrics   // Static after construction.

	mu       sync.Mutex
	level    Level                // Guarded by mu.
	mode     Mode                 // Guarded by mu.
	until    time.Time            // manual pin expiry; zero: none. Guarded by mu.
	lastStep time.Time            // last level change. Guarded by mu.
	subs     map[chan Change]bool // Guarded by mu.
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
	if cfg.BreakerTimeout <= 0 {
		cfg.BreakerTimeout = 30 * time.Second
	}
	if cfg.ProbeReadings == 0 {
		cfg.ProbeReadings = 5
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
	c := &Controller{cfg: cfg, mode: Auto, subs: make(map[chan Change]bool), metrics: newMetrics(cfg.Metrics)}
	for _, s := range cfg.Signals {
		c.breakers = append(c.breakers, newBreaker(s, cfg))
	}
	c.metrics.set(c.level, c.mode)
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
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.level
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
	c.mode = Manual
	c.until = time.Time{}
	if d > 0 {
		c.until = c.cfg.Now().Add(d)
	}
	c.setLocked(l, by, true)
	return nil
}

// SetAuto hands the level back to the breakers; it moves at the next tick.
func (c *Controller) SetAuto(by string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mode = Auto
	c.until = time.Time{}
	c.setLocked(c.level, by, true)
}

// setLocked changes the level, logs, counts and tells subscribers. force
// announces even an unchanged level (a mode change).
func (c *Controller) setLocked(l Level, by string, force bool) {
	if l == c.level && !force {
		return
	}
	ch := Change{From: c.level, To: l, Mode: c.mode, By: by, At: c.cfg.Now()}
	if l != c.level {
		c.lastStep = ch.At
		c.metrics.transitions.WithLabelValues(fmt.Sprint(int(ch.From)), fmt.Sprint(int(l)), byKind(by)).Inc()
	}
	c.level = l
	c.metrics.set(l, c.mode)
	c.cfg.Logger.Info("degradation level", "from", int(ch.From), "to", int(l), "mode", string(c.mode), "by", by)
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
func (c *Controller) Subscribe() (<-chan Change, func()) {
	ch := make(chan Change, 16)
	c.mu.Lock()
	c.subs[ch] = true
	c.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			// setLocked sends under mu, so closing under mu after the
			// delete can never race a send.
			c.mu.Lock()
			delete(c.subs, ch)
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
	for _, b := range c.breakers {
		if d := b.observe(); d > target {
			target, by = d, "breaker:"+b.signal.Name
		}
		c.metrics.breaker.WithLabelValues(b.signal.Name).Set(float64(b.cb.State()))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.cfg.Now()
	if c.mode == Manual {
		if c.until.IsZero() || now.Before(c.until) {
			return
		}
		c.mode, c.until = Auto, time.Time{}
		c.setLocked(c.level, "expiry", true)
	}
	switch {
	case target > c.level:
		c.setLocked(target, by, false)
	case target < c.level && now.Sub(c.lastStep) >= c.cfg.StepDown:
		c.setLocked(c.level-1, "recovery", false) // one step at a time
	}
}

// BreakerStatus is one breaker as the admin API shows it.
type BreakerStatus struct {
	Name      string  `json:"name"`
	State     string  `json:"state"`
	Value     float64 `json:"value"`
	Threshold float64 `json:"threshold"`
	Relief    int     `json:"relief"`
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

// breaker wraps one signal in a two-step circuit breaker.
type breaker struct {
	signal Signal                                     // Static after construction.
	cb     *gobreaker.TwoStepCircuitBreaker[struct{}] // Static after construction.

	mu   sync.Mutex
	last float64 // Guarded by mu.
}

var errOver = errors.New("degrade: signal over threshold")

func newBreaker(s Signal, cfg Config) *breaker {
	trip := cfg.TripAfter
	return &breaker{signal: s, cb: gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        s.Name,
		MaxRequests: cfg.ProbeReadings,
		Interval:    time.Minute, // counts must not grow forever (0 never clears them)
		Timeout:     cfg.BreakerTimeout,
		ReadyToTrip: func(n gobreaker.Counts) bool { return n.ConsecutiveFailures >= trip },
	})}
}

// observe reads the signal, reports it to the breaker and returns the
// level this breaker asks for: its relief while open, one less while
// probing, none while closed.
func (b *breaker) observe() Level {
	v := b.signal.Read()
	b.mu.Lock()
	b.last = v
	b.mu.Unlock()
	if done, err := b.cb.Allow(); err == nil {
		if v >= b.signal.Threshold {
			done(errOver)
		} else {
			done(nil)
		}
	}
	switch b.cb.State() {
	case gobreaker.StateOpen:
		return b.signal.Relief
	case gobreaker.StateHalfOpen:
		return b.signal.Relief - 1
	}
	return LevelNormal
}

func (b *breaker) status() BreakerStatus {
	b.mu.Lock()
	defer b.mu.Unlock()
	return BreakerStatus{Name: b.signal.Name, State: b.cb.State().String(), Value: b.last,
		Threshold: b.signal.Threshold, Relief: int(b.signal.Relief), Basis: b.signal.Basis}
}
