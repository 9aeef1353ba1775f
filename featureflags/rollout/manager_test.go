package rollout

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chatd/chatd/featureflags"
)

const rrFlag = featureflags.ReadReceipts

func TestStepsUpWhileGuardsHold(t *testing.T) {
	e := newEnv(t)
	p := e.start(rr(10, 50, 100))
	if p.State != Running || p.Percent != 10 || p.Step != 0 || e.rollout(rrFlag) != 10 {
		t.Fatalf("after start: plan %+v, flag at %d", p, e.rollout(rrFlag))
	}
	mustContain(t, "start actor", e.lastAudit(rrFlag), "rollout: started by admin:ops", "step 1/3 at 10%")

	e.run(59, rrFlag, fault{}, nil)
	if got := e.rollout(rrFlag); got != 10 {
		t.Fatalf("before the hold ends: flag at %d, want 10", got)
	}
	e.run(1, rrFlag, fault{}, nil)
	p = e.plan(rrFlag)
	if got := e.rollout(rrFlag); got != 50 || p.Percent != 50 || p.LastGood != 10 || p.State != Running {
		t.Fatalf("after one hold: flag at %d, plan %+v", got, p)
	}
	mustContain(t, "step actor", e.lastAudit(rrFlag), "rollout: step 2/3 at 50%", "10% held 1h0m0s")
	for _, c := range p.Checks {
		if c.Verdict != VerdictOK {
			t.Errorf("healthy traffic: check %+v", c)
		}
	}

	e.run(60, rrFlag, fault{}, nil)
	p = e.plan(rrFlag)
	if got := e.rollout(rrFlag); got != 100 || p.State != Done || p.LastGood != 100 {
		t.Fatalf("after two holds: flag at %d, plan %+v", got, p)
	}
	kinds := []string{}
	for _, ev := range p.History {
		kinds = append(kinds, ev.Kind+"@"+strconv.Itoa(ev.Percent))
	}
	if want := []string{"start@10", "step@50", "step@100", "done@100"}; !slices.Equal(kinds, want) {
		t.Fatalf("history %v, want %v", kinds, want)
	}
	if v := metric(t, e.reg, "chat_rollout_percent", rrFlag); v != 100 {
		t.Errorf("chat_rollout_percent = %v, want 100", v)
	}
	if v := metric(t, e.reg, "chat_rollout_state", rrFlag, "done"); v != 1 {
		t.Errorf("chat_rollout_state{done} = %v, want 1", v)
	}
	if v := metric(t, e.reg, "chat_rollout_state", rrFlag, "running"); v != 0 {
		t.Errorf("chat_rollout_state{running} = %v, want 0", v)
	}
	// A done plan is no longer watched: the meter costs nothing again.
	if e.meter.meterOf(rrFlag) != nil {
		t.Error("the meter still watches a finished plan's flag")
	}
}

// haltCase runs a plan to 50%, then injects f for the users inside and
// checks that it halts within one window, back at 10%, for guard.
func haltCase(t *testing.T, f fault, guard string, reason ...string) {
	e := newEnv(t)
	e.start(rr(10, 50, 100))
	e.run(60, rrFlag, fault{}, nil)
	if e.rollout(rrFlag) != 50 {
		t.Fatalf("flag at %d, want 50 before the fault", e.rollout(rrFlag))
	}
	e.run(5, rrFlag, fault{}, nil) // some healthy time at 50%
	window := int(time.Duration(e.plan(rrFlag).Window) / time.Minute)
	took := e.run(window, rrFlag, f, func(p Plan) bool { return p.State == Halted })
	p := e.plan(rrFlag)
	if p.State != Halted {
		t.Fatalf("not halted %d minutes into the fault; checks %+v", took, p.Checks)
	}
	t.Logf("halted %d minutes into the fault: %s", took, p.Reason)
	if got := e.rollout(rrFlag); got != 10 || p.Percent != 10 || p.Step != 0 {
		t.Fatalf("after the halt: flag at %d, plan at %d (step %d), want 10", got, p.Percent, p.Step)
	}
	last := p.History[len(p.History)-1]
	if last.Kind != "halt" || last.Guard != guard || last.Percent != 10 {
		t.Fatalf("last event %+v, want a halt by %s to 10", last, guard)
	}
	actor := e.lastAudit(rrFlag)
	mustContain(t, "audit actor", actor, append([]string{"rollout: halted at 50%:", "(guard " + guard + ")", "back to 10%"}, reason...)...)
	mustContain(t, "plan reason", p.Reason, "halted at 50%", "(guard "+guard+")")
	if v := metric(t, e.reg, "chat_rollout_halts_total", rrFlag, guard); v != 1 {
		t.Errorf("chat_rollout_halts_total{guard=%s} = %v, want 1", guard, v)
	}
	if v := metric(t, e.reg, "chat_rollout_state", rrFlag, "halted"); v != 1 {
		t.Errorf("chat_rollout_state{halted} = %v, want 1", v)
	}

	// Halted means halted: time passes, nothing steps up.
	e.run(120, rrFlag, fault{}, nil)
	if p := e.plan(rrFlag); p.State != Halted || e.rollout(rrFlag) != 10 {
		t.Fatalf("a halted plan moved: %s at %d", p.State, e.rollout(rrFlag))
	}
}

func TestHaltOnErrorsInside(t *testing.T) {
	haltCase(t, fault{errors: 0.2}, GuardErrors, "errors inside", "of sessions")
}

func TestHaltOnDisconnectsInside(t *testing.T) {
	haltCase(t, fault{disconnect: true}, GuardDisconnects, "abnormal disconnects inside", "vs outside 0.0% of closes")
}

func TestHaltOnSlowDeliveryInside(t *testing.T) {
	haltCase(t, fault{latency: 400 * time.Millisecond}, GuardDelivery, "delivery p99 inside")
}

func TestFaultOutsideDoesNotHalt(t *testing.T) {
	// Errors for everyone (both cohorts alike) are not the flag's doing.
	e := newEnv(t)
	e.start(rr(10, 50, 100))
	for range 70 {
		e.minuteOfTraffic(rrFlag, fault{})
		for _, u := range e.users[:150] {
			e.meter.ErrorReply(u, "unavailable")
		}
	}
	if p := e.plan(rrFlag); p.State != Running || p.Percent != 50 {
		t.Fatalf("plan %s at %d, want running at 50; checks %+v", p.State, p.Percent, p.Checks)
	}
}

func TestPauseResumeAbort(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.start(rr(10, 50, 100))
	e.run(20, rrFlag, fault{}, nil)

	p, err := e.m.Pause(ctx, rrFlag, "admin:ops")
	if err != nil || p.State != Paused {
		t.Fatalf("pause: %v %+v", err, p)
	}
	if _, err := e.m.Pause(ctx, rrFlag, "admin:ops"); !errors.Is(err, ErrState) {
		t.Fatalf("pause twice: %v, want ErrState", err)
	}
	e.run(180, rrFlag, fault{errors: 1}, nil) // a paused plan neither steps nor halts
	p = e.plan(rrFlag)
	if p.State != Paused || e.rollout(rrFlag) != 10 {
		t.Fatalf("paused plan moved: %s at %d", p.State, e.rollout(rrFlag))
	}
	if c, ok := tripped(p.Checks); !ok || c.Guard != GuardErrors {
		t.Fatalf("a paused plan's checks are still shown; got %+v", p.Checks)
	}
	e.run(10, rrFlag, fault{}, nil) // the fault passes out of the window

	p, err = e.m.Resume(ctx, rrFlag, "admin:ops")
	if err != nil || p.State != Running {
		t.Fatalf("resume: %v %+v", err, p)
	}
	// 20 of the 60 minutes were held before the pause: 40 remain.
	if want := e.now.Add(40 * time.Minute); !p.NextStepAt.Equal(want) {
		t.Fatalf("next step at %v, want %v", p.NextStepAt, want)
	}
	took := e.run(60, rrFlag, fault{}, func(p Plan) bool { return p.Percent == 50 })
	if took != 40 {
		t.Fatalf("stepped up %d minutes after resuming, want 40", took)
	}

	p, err = e.m.Abort(ctx, rrFlag, "admin:ops", false)
	if err != nil || p.State != Aborted || p.Percent != 10 || e.rollout(rrFlag) != 10 {
		t.Fatalf("abort: %v %+v, flag at %d", err, p, e.rollout(rrFlag))
	}
	mustContain(t, "abort actor", e.lastAudit(rrFlag), "rollout: aborted by admin:ops at 50%; back to 10%")
	if _, err := e.m.Resume(ctx, rrFlag, "admin:ops"); !errors.Is(err, ErrState) {
		t.Fatalf("resume aborted: %v, want ErrState", err)
	}
	e.run(120, rrFlag, fault{}, nil)
	if e.rollout(rrFlag) != 10 {
		t.Fatalf("an aborted plan moved the flag to %d", e.rollout(rrFlag))
	}

	// A finished plan makes way for a new one; abort to zero.
	e.start(rr(20, 100))
	if e.rollout(rrFlag) != 20 {
		t.Fatalf("second plan: flag at %d", e.rollout(rrFlag))
	}
	if _, err := e.m.Start(ctx, rr(30), "admin:ops"); !errors.Is(err, ErrExists) {
		t.Fatalf("start over a running plan: %v, want ErrExists", err)
	}
	p, err = e.m.Abort(ctx, rrFlag, "admin:ops", true)
	if err != nil || p.Percent != 0 || p.Step != -1 || e.rollout(rrFlag) != 0 {
		t.Fatalf("abort to zero: %v %+v, flag at %d", err, p, e.rollout(rrFlag))
	}
	for _, op := range []func(context.Context, string, string) (Plan, error){e.m.Pause, e.m.Resume} {
		if _, err := op(ctx, featureflags.Typing, "admin:ops"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("no plan: %v, want ErrNotFound", err)
		}
	}
	if _, err := e.m.Abort(ctx, featureflags.Typing, "admin:ops", false); !errors.Is(err, ErrNotFound) {
		t.Fatalf("abort no plan: %v, want ErrNotFound", err)
	}
}

func TestResumeHaltedRetriesTheStep(t *testing.T) {
	e := newEnv(t)
	e.start(rr(10, 50, 100))
	e.run(60, rrFlag, fault{}, nil)
	e.run(10, rrFlag, fault{errors: 1}, func(p Plan) bool { return p.State == Halted })
	if e.plan(rrFlag).State != Halted {
		t.Fatal("did not halt")
	}
	p, err := e.m.Resume(context.Background(), rrFlag, "admin:ops")
	if err != nil || p.State != Running || p.Percent != 50 || e.rollout(rrFlag) != 50 {
		t.Fatalf("resume halted: %v %+v, flag at %d", err, p, e.rollout(rrFlag))
	}
	mustContain(t, "resume actor", e.lastAudit(rrFlag), "rollout: resumed by admin:ops: step 2/3 at 50%")
	if p.Reason == "" {
		t.Error("the last halt's reason is gone after resuming")
	}
	e.run(60, rrFlag, fault{}, nil)
	if p := e.plan(rrFlag); p.State != Done || e.rollout(rrFlag) != 100 {
		t.Fatalf("after the retry held: %s at %d: %s %+v", p.State, e.rollout(rrFlag), p.Reason, p.History)
	}
}

func TestRestartResumesThePlan(t *testing.T) {
	e := newEnv(t)
	e.start(rr(10, 50, 100))
	e.run(60, rrFlag, fault{}, nil) // at 50% since t0+60m
	stepAt := e.now
	e.run(30, rrFlag, fault{}, nil)

	e.restart() // a new process: flags at their defaults (100%), a fresh meter and manager
	if e.rollout(rrFlag) != 100 || len(e.m.Plans()) != 0 {
		t.Fatalf("before the first tick: flag at %d, %d plans", e.rollout(rrFlag), len(e.m.Plans()))
	}
	e.run(1, rrFlag, fault{}, nil)
	p := e.plan(rrFlag)
	if p.State != Running || p.Percent != 50 || !p.StepStart.Equal(stepAt) || e.rollout(rrFlag) != 50 {
		t.Fatalf("after restart: %+v, flag at %d", p, e.rollout(rrFlag))
	}
	// The hold ends at stepAt+60m as before; the guards have a full
	// window by then, so the step comes on time.
	took := e.run(60, rrFlag, fault{}, func(p Plan) bool { return p.Percent == 100 })
	if got := e.now.Sub(stepAt); got != time.Hour {
		t.Fatalf("stepped to 100 %v after the last step (%d minutes after restart), want 1h", got, took)
	}

	// A restart late in a hold waits for one full window of guard data.
	e2 := newEnv(t)
	e2.start(rr(10, 50, 100))
	e2.run(55, rrFlag, fault{}, nil)
	e2.restart()
	took = e2.run(30, rrFlag, fault{}, func(p Plan) bool { return p.Percent == 50 })
	if took != 11 { // the first tick after restart opens the window, ten minutes later it is full
		t.Fatalf("stepped %d minutes after restart, want 11", took)
	}
}

// Load, what a node does before it serves, lists the stored plans and
// leaves the flags to the first tick; a store that fails is its error.
func TestLoadListsPlansWithoutWriting(t *testing.T) {
	e := newEnv(t)
	e.start(rr(10, 50, 100))
	e.restart() // flags at their defaults (100%)
	if err := e.m.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	if ps := e.m.Plans(); len(ps) != 1 || ps[0].Flag != rrFlag || ps[0].State != Running || ps[0].Percent != 10 {
		t.Fatalf("after Load: %+v, want the running plan at 10%%", ps)
	}
	if got := e.rollout(rrFlag); got != 100 {
		t.Fatalf("Load wrote the flag: %d%%, want it left at 100%% for the first tick", got)
	}
	e.run(1, rrFlag, fault{}, nil)
	if got := e.rollout(rrFlag); got != 10 {
		t.Fatalf("after the first tick the flag is at %d%%, want 10%%", got)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	m := NewManager(Config{Flags: e.flags, Store: sharedFailing{}, Logger: quiet(), Metrics: prometheus.NewRegistry()})
	if err := m.Load(ctx); err == nil || len(m.Plans()) != 0 {
		t.Fatalf("Load from a failing store: err %v, %d plans; want the error and none", err, len(m.Plans()))
	}
}

// sharedFailing is a plan store that fails as a cancelled remote one does.
type sharedFailing struct{}

func (sharedFailing) Load(ctx context.Context) ([]Plan, error) { return nil, ctx.Err() }
func (sharedFailing) Save(ctx context.Context, _ []Plan) error { return ctx.Err() }

func TestLeaderGatesStepping(t *testing.T) {
	e := newEnv(t)
	e.start(rr(10, 50, 100))
	e.leader.Store(false)
	e.run(120, rrFlag, fault{errors: 1}, nil)
	p := e.plan(rrFlag)
	if p.State != Running || p.Percent != 10 || e.rollout(rrFlag) != 10 {
		t.Fatalf("a follower moved the plan: %s at %d", p.State, e.rollout(rrFlag))
	}
	if c, ok := tripped(p.Checks); !ok || c.Guard != GuardErrors {
		t.Fatalf("a follower still judges and shows its checks; got %+v", p.Checks)
	}
	e.leader.Store(true)
	e.run(1, rrFlag, fault{errors: 1}, nil)
	if p := e.plan(rrFlag); p.State != Halted || e.rollout(rrFlag) != 0 {
		t.Fatalf("the leader did not halt: %s at %d", p.State, e.rollout(rrFlag))
	}
}

func TestFollowerSeesLeadersPlans(t *testing.T) {
	// Two managers on one store: the follower serves an admin pause, the
	// leader honours it at its next tick.
	ctx := context.Background()
	e := newEnv(t)
	follower := NewManager(Config{Flags: e.flags, Store: e.store, Logger: quiet(), Clock: e,
		Leader: func() bool { return false }})
	e.start(rr(10, 50, 100))
	follower.Tick(ctx, e.now)
	if ps := follower.Plans(); len(ps) != 1 || ps[0].Percent != 10 {
		t.Fatalf("follower sees %+v", ps)
	}
	if _, err := follower.Pause(ctx, rrFlag, "admin:bob"); err != nil {
		t.Fatal(err)
	}
	e.run(120, rrFlag, fault{}, nil)
	if p := e.plan(rrFlag); p.State != Paused || e.rollout(rrFlag) != 10 {
		t.Fatalf("leader ignored the follower's pause: %s at %d", p.State, e.rollout(rrFlag))
	}
}

func TestBadRequests(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	h := Duration(time.Hour)
	cases := []struct {
		name  string
		req   StartRequest
		field string
	}{
		{"unknown flag", StartRequest{Flag: "nope", Steps: []int{10}, Hold: h}, "flag"},
		{"floor flag", StartRequest{Flag: featureflags.Poll, Steps: []int{10}, Hold: h}, "flag"},
		{"no steps", StartRequest{Flag: rrFlag, Hold: h}, "steps"},
		{"not ascending", StartRequest{Flag: rrFlag, Steps: []int{50, 10, 100}, Hold: h}, "steps"},
		{"repeated", StartRequest{Flag: rrFlag, Steps: []int{10, 10}, Hold: h}, "steps"},
		{"zero", StartRequest{Flag: rrFlag, Steps: []int{0, 10}, Hold: h}, "steps"},
		{"above 100", StartRequest{Flag: rrFlag, Steps: []int{10, 101}, Hold: h}, "steps"},
		{"no hold", StartRequest{Flag: rrFlag, Steps: []int{10}}, "hold"},
		{"negative hold", StartRequest{Flag: rrFlag, Steps: []int{10}, Hold: -h}, "hold"},
		{"endless hold", StartRequest{Flag: rrFlag, Steps: []int{10}, Hold: Duration(MaxHold + 1)}, "hold"},
		{"window over hold", StartRequest{Flag: rrFlag, Steps: []int{10}, Hold: h, Window: 2 * h}, "window"},
		{"negative window", StartRequest{Flag: rrFlag, Steps: []int{10}, Hold: h, Window: -h}, "window"},
		{"ratio below 1", StartRequest{Flag: rrFlag, Steps: []int{10}, Hold: h,
			Guards: Guards{Errors: Guard{Ratio: 0.5}}}, "guards.errors.ratio"},
		{"negative floor", StartRequest{Flag: rrFlag, Steps: []int{10}, Hold: h,
			Guards: Guards{Delivery: Guard{Floor: -1}}}, "guards.delivery.floor"},
		{"share above 1", StartRequest{Flag: rrFlag, Steps: []int{10}, Hold: h,
			Guards: Guards{Disconnects: Guard{Floor: 2}}}, "guards.disconnects.floor"},
		{"negative samples", StartRequest{Flag: rrFlag, Steps: []int{10}, Hold: h,
			Guards: Guards{Errors: Guard{MinSamples: -5}}}, "guards.errors.min_samples"},
	}
	for _, c := range cases {
		_, err := e.m.Start(ctx, c.req, "admin:ops")
		var verr *ValidationError
		if !errors.As(err, &verr) || verr.Field != c.field {
			t.Errorf("%s: %v, want a ValidationError on %s", c.name, err, c.field)
		}
		if unknown := errors.Is(err, featureflags.ErrUnknownFlag); unknown != (c.name == "unknown flag") {
			t.Errorf("%s: wraps ErrUnknownFlag: %v", c.name, unknown)
		}
	}
	if len(e.m.Plans()) != 0 || len(e.flags.Audit()) != 0 {
		t.Fatalf("a refused request left %d plans and %d flag changes", len(e.m.Plans()), len(e.flags.Audit()))
	}
	// A short hold takes a window of the hold; the guards get their defaults.
	p := e.start(StartRequest{Flag: rrFlag, Steps: []int{5, 100}, Hold: Duration(time.Minute)})
	if time.Duration(p.Window) != time.Minute || p.Guards != DefaultGuards() {
		t.Fatalf("defaults: window %v, guards %+v", time.Duration(p.Window), p.Guards)
	}
}

// failingWriter is the real store behind a switch that makes writes fail,
// as the cluster's shared state does while Redis is down.
type failingWriter struct {
	*featureflags.Store
	fail bool
}

func (w *failingWriter) Update(name string, enabled bool, rollout int, actor string) (featureflags.Flag, error) {
	if w.fail {
		return featureflags.Flag{}, errors.New("shared state unavailable")
	}
	return w.Store.Update(name, enabled, rollout, actor)
}

func TestFlagWriteFailureIsRetried(t *testing.T) {
	e := newEnv(t)
	w := &failingWriter{Store: e.flags}
	e.m = NewManager(Config{Flags: w, Store: e.store, Meter: e.meter, Logger: quiet(), Clock: e})
	e.start(rr(10, 50, 100))
	e.run(60, rrFlag, fault{}, nil)
	w.fail = true
	e.run(10, rrFlag, fault{errors: 1}, nil)
	if p := e.plan(rrFlag); p.State != Running || e.rollout(rrFlag) != 50 {
		t.Fatalf("with the flag unwritable: %s at %d, want running at 50", p.State, e.rollout(rrFlag))
	}
	w.fail = false
	e.run(1, rrFlag, fault{errors: 1}, nil)
	if p := e.plan(rrFlag); p.State != Halted || e.rollout(rrFlag) != 10 {
		t.Fatalf("once writable: %s at %d, want halted at 10", p.State, e.rollout(rrFlag))
	}
}

func TestRunTicksOnTheClock(t *testing.T) {
	fs := featureflags.NewStore(featureflags.Config{Logger: quiet()})
	clock := &manualClock{now: t0, tick: make(chan time.Time)}
	m := NewManager(Config{Flags: fs, Logger: quiet(), Clock: clock})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); m.Run(ctx) }()

	if _, err := m.Start(ctx, StartRequest{Flag: rrFlag, Steps: []int{10, 50}, Hold: Duration(time.Minute)}, "admin:ops"); err != nil {
		t.Fatal(err)
	}
	clock.tick <- t0 // received once Run has ticked at start and waits for the ticker
	// Received once Run is done with the tick before, which read the clock
	// at t0 and so started the plan's window there. Without it, that tick
	// could read the clock after the set below, start the window at the
	// minute, and the step would never come (a hang seen in CI).
	clock.tick <- t0
	ch, unsub := fs.Subscribe()
	defer unsub()
	clock.set(t0.Add(time.Minute))
	clock.tick <- t0.Add(time.Minute)
	<-ch
	if f, _ := fs.Snapshot().Get(rrFlag); f.Rollout != 50 {
		t.Fatalf("after a tick past the hold: %d%%, want 50", f.Rollout)
	}
	cancel()
	<-done
}

func TestLastStepBelow100IsHeldThenDone(t *testing.T) {
	e := newEnv(t)
	e.start(rr(10, 40))
	e.run(60, rrFlag, fault{}, nil)
	if p := e.plan(rrFlag); p.State != Running || p.Percent != 40 || p.NextStepAt.IsZero() {
		t.Fatalf("at the last step: %+v", p)
	}
	e.run(59, rrFlag, fault{}, nil)
	if p := e.plan(rrFlag); p.State != Running {
		t.Fatalf("the last step ended before its hold: %s", p.State)
	}
	e.run(1, rrFlag, fault{}, nil)
	p := e.plan(rrFlag)
	if p.State != Done || p.Percent != 40 || p.LastGood != 40 || !p.NextStepAt.IsZero() || e.rollout(rrFlag) != 40 {
		t.Fatalf("after the last hold: %+v, flag at %d", p, e.rollout(rrFlag))
	}
}
