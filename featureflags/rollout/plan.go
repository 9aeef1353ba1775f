package rollout

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/chatd/chatd/featureflags"
)

// Errors of the Manager. The admin API maps a *ValidationError to 400,
// ErrNotFound to 404, ErrExists and ErrState to 409; an error of the flag
// writer keeps its own meaning (the cluster's is unavailable), and
// anything else is the plan store failing (503).
var (
	ErrNotFound = errors.New("rollout: no plan for this flag")
	ErrExists   = errors.New("rollout: the flag already has a plan in progress")
	ErrState    = errors.New("rollout: the plan is not in a state that allows this")
)

// ValidationError says which field of a request or a stored plan is wrong
// and why. A flag the registry does not know is one too, and wraps
// featureflags.ErrUnknownFlag.
type ValidationError struct {
	Field  string // e.g. "flag", "steps", "hold", "guards.errors.ratio"
	Reason string
	Err    error // the cause, if any
}

func (e *ValidationError) Error() string {
	return "rollout: invalid " + e.Field + ": " + e.Reason
}

// Unwrap returns the cause.
func (e *ValidationError) Unwrap() error { return e.Err }

func invalid(field, format string, args ...any) error {
	return &ValidationError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Bounds of a plan.
const (
	// DefaultWindow is the guard window when a request gives none (or the
	// hold, when that is shorter).
	DefaultWindow = 10 * time.Minute
	// MaxHold bounds a step's hold.
	MaxHold = 90 * 24 * time.Hour
	// maxHistory bounds a plan's event list; the oldest events go first.
	maxHistory = 200
)

// State is where a plan is in its life.
type State string

// The states of a plan. Running, Paused and Halted plans are in progress:
// the flag has at most one, and its rollout percent is the plan's. Done and
// Aborted plans are kept for the record until the flag's next plan.
const (
	Running State = "running" // stepping up after each hold while the guards hold
	Paused  State = "paused"  // an operator holds it at its step; nothing automatic happens
	Halted  State = "halted"  // a guard tripped; rolled back to the last good step
	Done    State = "done"    // reached its last step
	Aborted State = "aborted" // an operator stopped it
)

// States lists every state, in the order of the state metric.
var States = []State{Running, Paused, Halted, Done, Aborted}

// Active reports whether a plan in state s is in progress.
func (s State) Active() bool { return s == Running || s == Paused || s == Halted }

func (s State) valid() bool { return slices.Contains(States, s) }

// Duration is a time.Duration that reads and writes JSON as a Go duration
// string, such as "24h" or "10m0s".
type Duration time.Duration

// MarshalJSON writes d as a string like "24h0m0s".
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads a Go duration string; numbers are refused, so "24"
// is never read as 24 nanoseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New(`a duration is a string such as "24h" or "10m"`)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("bad duration %q", s)
	}
	*d = Duration(v)
	return nil
}

// StartRequest asks for a new plan. It is the body of
// POST /v1/admin/rollouts.
type StartRequest struct {
	Flag   string   `json:"flag"`
	Steps  []int    `json:"steps"`            // percents, strictly ascending, 1–100
	Hold   Duration `json:"hold"`             // time at each step before the next; > 0
	Window Duration `json:"window,omitempty"` // guard window; DefaultWindow (at most the hold)
	Guards Guards   `json:"guards,omitzero"`  // zero fields take the defaults (see Guards)
}

// Event is one entry of a plan's history.
type Event struct {
	At      time.Time `json:"at"`
	Kind    string    `json:"kind"`            // start, step, halt, pause, resume, abort, done
	Percent int       `json:"percent"`         // the rollout after the event
	Actor   string    `json:"actor"`           // "admin:alice", or "rollout" for the manager itself
	Guard   string    `json:"guard,omitempty"` // halt: the guard that tripped
	Reason  string    `json:"reason,omitempty"`
}

// Plan is a guarded progressive rollout of one flag. It is what the store
// keeps and what the admin API shows.
type Plan struct {
	Flag   string   `json:"flag"`
	Steps  []int    `json:"steps"`
	Hold   Duration `json:"hold"`
	Window Duration `json:"window"`
	Guards Guards   `json:"guards"` // with the defaults filled in

	State State `json:"state"`
	// Step is the index in Steps of the step in force, -1 when the plan
	// rolled back below its first step.
	Step int `json:"step"`
	// Percent is the rollout the plan has set: Steps[Step], or 0.
	Percent int `json:"percent"`
	// StepStart is when the step in force began, moved on by the time
	// spent paused, so the hold ends at StepStart + Hold.
	StepStart time.Time `json:"step_start"`
	// NextStepAt is when the next step is due (running plans only); the
	// guards must also have watched one full window at this step.
	NextStepAt time.Time `json:"next_step_at,omitzero"`
	PausedAt   time.Time `json:"paused_at,omitzero"`
	// LastGood is the highest percent that completed its hold with the
	// guards holding: where a halt or an abort rolls back to. 0 at first.
	LastGood int `json:"last_good"`
	// Reason says why the plan last halted.
	Reason    string    `json:"reason,omitempty"`
	StartedBy string    `json:"started_by"`
	StartedAt time.Time `json:"started_at"`
	UpdatedAt time.Time `json:"updated_at"`
	History   []Event   `json:"history"` // oldest first, at most 200
	// Checks is the last judgement of the guards on this node's traffic.
	Checks []Check `json:"checks,omitempty"`
}

// clone returns a deep copy of p.
func (p Plan) clone() Plan {
	p.Steps = slices.Clone(p.Steps)
	p.History = slices.Clone(p.History)
	p.Checks = slices.Clone(p.Checks)
	return p
}

func (p *Plan) record(e Event) {
	p.History = append(p.History, e)
	if over := len(p.History) - maxHistory; over > 0 {
		p.History = slices.Delete(p.History, 0, over)
	}
	p.UpdatedAt = e.At
}

// setStep puts the plan at step i (-1: below the first step).
func (p *Plan) setStep(i int) {
	p.Step, p.Percent = i, 0
	if i >= 0 {
		p.Percent = p.Steps[i]
	}
}

// indexOf returns the index of percent in steps, -1 when it is not there
// (0, the rollout before the first step).
func indexOf(steps []int, percent int) int {
	return slices.Index(steps, percent)
}

// plan validates the request and returns the plan it starts at now.
func (r StartRequest) plan(now time.Time, actor string) (Plan, error) {
	if d, ok := featureflags.Lookup(r.Flag); !ok {
		return Plan{}, &ValidationError{Field: "flag", Reason: fmt.Sprintf("no flag named %q", r.Flag),
			Err: featureflags.ErrUnknownFlag}
	} else if d.Floor {
		return Plan{}, invalid("flag", "%s is a floor and is always at 100%%", r.Flag)
	}
	window := time.Duration(r.Window)
	if window == 0 {
		window = min(DefaultWindow, time.Duration(r.Hold))
	}
	p := Plan{Flag: r.Flag, Steps: slices.Clone(r.Steps), Hold: r.Hold, Window: Duration(window),
		Guards: r.Guards.withDefaults(), State: Running, StepStart: now, StartedBy: actor,
		StartedAt: now}
	if err := p.validateShape(); err != nil {
		return Plan{}, err
	}
	p.setStep(0)
	return p, nil
}

// validateShape checks what a request and a stored plan share: steps,
// hold, window and guards.
func (p *Plan) validateShape() error {
	if len(p.Steps) == 0 {
		return invalid("steps", "give at least one percent, e.g. 10,50,100")
	}
	for i, s := range p.Steps {
		if s < 1 || s > 100 {
			return invalid("steps", "%d is outside 1–100", s)
		}
		if i > 0 && s <= p.Steps[i-1] {
			return invalid("steps", "must be strictly ascending (%d after %d)", s, p.Steps[i-1])
		}
	}
	hold, window := time.Duration(p.Hold), time.Duration(p.Window)
	if hold <= 0 || hold > MaxHold {
		return invalid("hold", "must be above 0 and at most %v", MaxHold)
	}
	if window <= 0 || window > hold {
		return invalid("window", "must be above 0 and at most the hold (%v)", hold)
	}
	return p.Guards.validate()
}

// validate checks a plan read from a store.
func (p *Plan) validate() error {
	if p.Flag == "" {
		return invalid("flag", "missing")
	}
	if err := p.validateShape(); err != nil {
		return err
	}
	if !p.State.valid() {
		return invalid("state", "unknown state %q", p.State)
	}
	if p.Step < -1 || p.Step >= len(p.Steps) {
		return invalid("step", "%d is outside the steps", p.Step)
	}
	if want := stepPercent(p.Steps, p.Step); p.Percent != want {
		return invalid("percent", "%d is not step %d's %d", p.Percent, p.Step, want)
	}
	if p.State == Paused && p.PausedAt.IsZero() {
		return invalid("paused_at", "a paused plan needs it")
	}
	if p.State == Halted && p.Step == len(p.Steps)-1 {
		return invalid("step", "a halted plan is below the step that tripped")
	}
	if p.LastGood != 0 && indexOf(p.Steps, p.LastGood) < 0 {
		return invalid("last_good", "%d is not one of the steps", p.LastGood)
	}
	if len(p.History) > maxHistory {
		return invalid("history", "more than %d events", maxHistory)
	}
	return nil
}

func stepPercent(steps []int, i int) int {
	if i < 0 {
		return 0
	}
	return steps[i]
}
