package degrade

import (
	"fmt"
	"time"
)

// Several nodes share one level. The rule, which a bridge outside this
// package carries between the nodes (transports/node):
//
//   - An operator's decision (SetManual, SetAuto) is shared: the bridge
//     reads it with Pin and every other node applies it with ApplyPin. A
//     pin's expiry is an absolute time, so it ends everywhere at once.
//   - In auto mode each node's breakers set its own auto level (Auto), which
//     the bridge publishes; each node takes the highest auto level of the
//     other live nodes as its floor (SetFloor). The level in force is then
//     max(own, floor): the most loaded node decides, the same everywhere.
//
// Changes applied from the cluster are marked Remote, so a bridge that
// shares local changes never echoes them back.

// Pin is an operator's last decision about the level: a manual pin
// (Level, and Until unless it lasts until someone sets auto) or a return
// to auto mode. It is what nodes share; a pin whose Until has passed
// stands for auto mode. At orders decisions: the later one wins.
type Pin struct {
	Mode  Mode      `json:"mode"`
	Level Level     `json:"level"`          // manual only
	Until time.Time `json:"until,omitzero"` // manual only; zero: no expiry
	By    string    `json:"by"`             // "admin:alice"
	At    time.Time `json:"at"`             // when the decision was made
}

// Expired reports whether p is a manual pin whose time ran out at now.
func (p Pin) Expired(now time.Time) bool {
	return p.Mode == Manual && !p.Until.IsZero() && !now.Before(p.Until)
}

// Pin returns the last operator decision, made on this node or applied
// from another: after a pin expires it still returns that pin. A new
// controller returns an auto Pin with a zero At.
func (c *Controller) Pin() Pin {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pin
}

// ApplyPin applies a decision made on another node, unless the one in
// force was made later (p.At not after Pin().At): then it reports false
// and changes nothing, so replays and echoes are harmless. An expired
// manual pin returns this node to auto mode, as its expiry would have. The
// changes it causes are Remote. It fails with ErrBadLevel for a level
// outside 0–3 and for an unknown mode.
func (c *Controller) ApplyPin(p Pin) (bool, error) {
	switch {
	case p.Mode != Manual && p.Mode != Auto:
		return false, fmt.Errorf("%w: unknown mode %q", ErrBadLevel, p.Mode)
	case p.Level < 0 || p.Level > MaxLevel:
		return false, ErrBadLevel
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !p.At.After(c.pin.At) {
		return false, nil
	}
	c.pin = p
	switch {
	case p.Mode == Manual && !p.Expired(c.cfg.Now()):
		c.mode, c.until = Manual, p.Until
		c.setLocked(p.Level, p.By, true, true)
	case p.Mode == Manual:
		c.toAutoLocked("expiry", true)
	default:
		c.toAutoLocked(p.By, true)
	}
	return true, nil
}

// SetFloor sets the level that auto mode never goes below: on a cluster,
// the highest auto level of the other live nodes. The level in force in
// auto mode is max(Auto, floor); a manual pin ignores the floor. A change
// it causes is Remote, made by by ("cluster:<node>"). A floor that falls
// lowers the level at once: the node that asked for it no longer does.
func (c *Controller) SetFloor(l Level, by string) error {
	if l < 0 || l > MaxLevel {
		return ErrBadLevel
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.floor = l
	c.metrics.floor.Set(float64(l))
	if c.mode == Auto {
		c.setLocked(max(c.own, l), by, false, true)
	}
	return nil
}

// Floor returns the floor set by SetFloor; 0 on one node.
func (c *Controller) Floor() Level {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.floor
}

// Auto returns this node's own auto level, what its breakers ask for with
// the step-down rule, whatever the floor and a pin say, and when it last
// changed. While a pin holds it does not move; when the pin ends it starts
// from the pinned level.
func (c *Controller) Auto() (Level, time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.own, c.ownAt
}

// SubscribeAuto is Subscribe for this node's own auto level: each Change
// has the old and new Auto level in From and To. Same buffering and
// cancel as Subscribe.
func (c *Controller) SubscribeAuto() (<-chan Change, func()) { return c.subscribe(c.autoSubs) }
