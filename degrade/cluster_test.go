package degrade

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// next returns the change waiting on ch; every change under test is sent
// before the call that makes it returns, so there is nothing to wait for.
func next(t *testing.T, ch <-chan Change) Change {
	t.Helper()
	select {
	case c := <-ch:
		return c
	default:
		t.Fatal("no change was sent")
		return Change{}
	}
}

func none(t *testing.T, ch <-chan Change) {
	t.Helper()
	select {
	case c := <-ch:
		t.Fatalf("unexpected change %+v", c)
	default:
	}
}

func TestFloorHoldsAutoLevel(t *testing.T) {
	clk := &clock{now: time.Unix(1000, 0)}
	c := New(Config{Now: clk.Now, StepDown: time.Second})
	changes, cancel := c.Subscribe()
	defer cancel()
	if err := c.SetFloor(2, "cluster:b"); err != nil {
		t.Fatal(err)
	}
	if got := next(t, changes); got.To != 2 || !got.Remote || got.By != "cluster:b" {
		t.Fatalf("change = %+v, want a remote change to 2", got)
	}
	if own, _ := c.Auto(); own != 0 || c.Floor() != 2 {
		t.Fatalf("own %d floor %d, want 0 and 2", own, c.Floor())
	}
	clk.Add(time.Minute)
	c.Step() // no breaker asks for anything, but the floor holds
	if c.Level() != 2 {
		t.Fatalf("level %d stepped below the floor", c.Level())
	}
	if err := c.SetFloor(0, "cluster"); err != nil {
		t.Fatal(err)
	}
	if got := next(t, changes); got.From != 2 || got.To != 0 || !got.Remote {
		t.Fatalf("change = %+v, want a remote change to 0", got)
	}
	if err := c.SetFloor(4, "x"); !errors.Is(err, ErrBadLevel) {
		t.Fatalf("floor 4: %v", err)
	}
}

func TestOwnLevelAboveFloor(t *testing.T) {
	var load atomic.Int64
	c := New(Config{Now: (&clock{now: time.Unix(1000, 0)}).Now, TripAfter: 1,
		Signals: []Signal{{Name: "connections", Threshold: 100, Relief: LevelPoll,
			Read: func() float64 { return float64(load.Load()) }}}})
	autos, cancelAuto := c.SubscribeAuto()
	defer cancelAuto()
	changes, cancel := c.Subscribe()
	defer cancel()
	if err := c.SetFloor(1, "cluster:b"); err != nil {
		t.Fatal(err)
	}
	next(t, changes)
	load.Store(500)
	c.Step()
	if got := next(t, changes); got.From != 1 || got.To != 3 || got.Remote || got.By != "breaker:connections" {
		t.Fatalf("change = %+v, want a local change 1 → 3", got)
	}
	if got := next(t, autos); got.From != 0 || got.To != 3 {
		t.Fatalf("auto change = %+v, want 0 → 3", got)
	}
	if own, at := c.Auto(); own != 3 || at.IsZero() {
		t.Fatalf("Auto() = %d at %v", own, at)
	}
	// A floor under the node's own level changes nothing.
	if err := c.SetFloor(2, "cluster:b"); err != nil {
		t.Fatal(err)
	}
	none(t, changes)
	if c.Level() != 3 {
		t.Fatalf("level %d, want 3", c.Level())
	}
}

func TestPinOverridesFloor(t *testing.T) {
	clk := &clock{now: time.Unix(1000, 0)}
	c := New(Config{Now: clk.Now})
	autos, cancelAuto := c.SubscribeAuto()
	defer cancelAuto()
	if err := c.SetFloor(3, "cluster:b"); err != nil {
		t.Fatal(err)
	}
	if err := c.SetManual(1, 0, "admin:alice"); err != nil {
		t.Fatal(err)
	}
	if c.Level() != 1 {
		t.Fatalf("pinned level %d, want 1 whatever the floor", c.Level())
	}
	if err := c.SetFloor(2, "cluster:b"); err != nil || c.Level() != 1 {
		t.Fatalf("a floor moved a pin: level %d, %v", c.Level(), err)
	}
	// Back to auto: this node's level starts from the pin, under the floor.
	c.SetAuto("admin:alice")
	if c.Level() != 2 {
		t.Fatalf("level %d after auto, want the floor 2", c.Level())
	}
	if got := next(t, autos); got.To != 1 || got.By != "admin:alice" {
		t.Fatalf("auto change = %+v, want own level 1 from the pin", got)
	}
}

func TestApplyPinLastDecisionWins(t *testing.T) {
	clk := &clock{now: time.Unix(1000, 0)}
	a, b := New(Config{Now: clk.Now}), New(Config{Now: clk.Now})
	if p := b.Pin(); p.Mode != Auto || !p.At.IsZero() {
		t.Fatalf("a new controller's pin = %+v", p)
	}
	changes, cancel := b.Subscribe()
	defer cancel()
	if err := a.SetManual(2, 30*time.Minute, "admin:alice"); err != nil {
		t.Fatal(err)
	}
	pin := a.Pin()
	if pin.Mode != Manual || pin.Level != 2 || pin.By != "admin:alice" || !pin.Until.Equal(clk.Now().Add(30*time.Minute)) {
		t.Fatalf("pin = %+v", pin)
	}
	if ok, err := b.ApplyPin(pin); !ok || err != nil {
		t.Fatalf("ApplyPin = %v, %v", ok, err)
	}
	if got := next(t, changes); got.To != 2 || got.Mode != Manual || !got.Remote || got.By != "admin:alice" {
		t.Fatalf("change = %+v, want a remote pin to 2", got)
	}
	if mode, until := b.Mode(); mode != Manual || !until.Equal(pin.Until) {
		t.Fatalf("mode %s until %v, want the same expiry as the origin", mode, until)
	}
	// An echo, or an older decision, changes nothing.
	if ok, _ := b.ApplyPin(pin); ok {
		t.Fatal("the same pin applied twice")
	}
	old := pin
	old.Level, old.At = 3, pin.At.Add(-time.Second)
	if ok, _ := b.ApplyPin(old); ok || b.Level() != 2 {
		t.Fatalf("an older pin applied: level %d", b.Level())
	}
	none(t, changes)
	// A later decision on b comes back to a.
	clk.Add(time.Second)
	b.SetAuto("admin:bob")
	if ok, _ := a.ApplyPin(b.Pin()); !ok {
		t.Fatal("a later auto was not applied")
	}
	if mode, _ := a.Mode(); mode != Auto {
		t.Fatalf("mode %s, want auto", mode)
	}
	for _, bad := range []Pin{{Mode: Manual, Level: 4, At: clk.Now().Add(time.Hour)}, {Mode: "sideways", At: clk.Now().Add(time.Hour)}} {
		if _, err := a.ApplyPin(bad); !errors.Is(err, ErrBadLevel) {
			t.Errorf("ApplyPin(%+v) = %v", bad, err)
		}
	}
}

func TestSharedPinExpiresEverywhere(t *testing.T) {
	clk := &clock{now: time.Unix(1000, 0)}
	a, b := New(Config{Now: clk.Now}), New(Config{Now: clk.Now})
	if err := a.SetManual(3, 10*time.Minute, "admin:alice"); err != nil {
		t.Fatal(err)
	}
	clk.Add(5 * time.Minute) // b hears of it later; the expiry stays the same
	if ok, err := b.ApplyPin(a.Pin()); !ok || err != nil {
		t.Fatal(ok, err)
	}
	clk.Add(5 * time.Minute)
	a.Step()
	b.Step()
	for name, c := range map[string]*Controller{"a": a, "b": b} {
		if mode, _ := c.Mode(); mode != Auto {
			t.Errorf("%s: mode %s after the shared expiry", name, mode)
		}
		// The pin's level is where auto mode starts; the same Step takes
		// the first step down, as on one node.
		if own, _ := c.Auto(); own != 2 || c.Level() != 2 {
			t.Errorf("%s: own level %d, level %d, want 2 (one step down from the pin)", name, own, c.Level())
		}
	}
	// A node that starts after the expiry reads an expired pin: it stays
	// in auto mode at its own level.
	late := New(Config{Now: clk.Now})
	if ok, err := late.ApplyPin(a.Pin()); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if mode, _ := late.Mode(); mode != Auto || late.Level() != 0 {
		t.Fatalf("late node: mode %s level %d, want auto at 0", mode, late.Level())
	}
}
