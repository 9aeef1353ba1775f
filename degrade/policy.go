package degrade

import (
	"time"

	"github.com/chatd/chatd/core/protocol"
)

// Policy answers every per-user question the level and the flags decide:
// the negotiate offer, the greeting control envelope, whether a transport
// or a feature is on, and whether polls are short. chatd wires its methods
// into the hub and the transports; tests wire the same ones. A nil Policy
// is level 0 with every flag on.
type Policy struct {
	Controller   *Controller   // nil: level 0
	Flags        Flags         // nil: every flag on
	Transports   []string      // the transports this server has; nil: all three
	PollInterval time.Duration // the short-poll interval offered; PollInterval ms
}

// Level returns the level in force.
func (p *Policy) Level() Level {
	if p == nil || p.Controller == nil {
		return LevelNormal
	}
	return p.Controller.Level()
}

func (p *Policy) flags() Flags {
	if p == nil {
		return nil
	}
	return p.Flags
}

// Offer returns user's offer, limited to the transports this server has.
func (p *Policy) Offer(user string) Offer {
	o := OfferFor(p.Level(), p.flags(), user)
	if p == nil {
		return o
	}
	if p.Transports != nil {
		have := o.Transports[:0:0]
		for _, t := range o.Transports {
			for _, h := range p.Transports {
				if t == h {
					have = append(have, t)
				}
			}
		}
		o.Transports = have
	}
	if p.PollInterval > 0 {
		o.PollIntervalMS = p.PollInterval.Milliseconds()
	}
	return o
}

// FeatureOn reports whether feature is on for user; it is the hub's
// core.FeatureGate and builds no offer.
func (p *Policy) FeatureOn(user, feature string) bool {
	return FeatureOn(p.Level(), p.flags(), user, feature)
}

// Control returns user's offer as a control envelope: the hub's greeting
// and the control field of poll answers.
func (p *Policy) Control(user string) (protocol.Envelope, bool) {
	return p.Offer(user).Control(), true
}

// Offers returns whether transport is offered to a user, for the
// transports' upgrade checks.
func (p *Policy) Offers(transport string) func(user string) bool {
	return func(user string) bool { return p.Offer(user).Allows(transport) }
}

// Short reports whether polls answer at once (level 3).
func (p *Policy) Short() bool { return p.Level() >= LevelPoll }
