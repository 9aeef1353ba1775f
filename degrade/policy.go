package degrade

import (
	"sync/atomic"
	"time"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/protocol"
)

// Policy answers every per-user question the level and the flags decide:
// the negotiate offer, the greeting control envelope, whether a transport
// or a feature is on, and whether polls are short. chatd wires its methods
// into the hub and the transports; tests wire the same ones. A nil Policy
// is level 0 with every flag on.
//
// Its fields are set before first use and not changed after: ControlWire
// caches what they decide.
type Policy struct {
	Controller   *Controller   // nil: level 0
	Flags        Flags         // nil: every flag on
	Transports   []string      // the transports this server has; nil: all three
	PollInterval time.Duration // the short-poll interval offered; PollInterval ms

	// wires caches ControlWire's answers by offerKey: every user with the
	// same level and flag answers gets the same offer.
	wires [offerKeys]atomic.Pointer[ControlWire]
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
	return p.limit(OfferFor(p.Level(), p.flags(), user))
}

// limit applies the Policy's fixed fields to an offer.
func (p *Policy) limit(o Offer) Offer {
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

// ControlWire is a control envelope in its wire form, with a tag that
// names its content: two ControlWires with the same Tag have the same
// Data. Tag is never 0.
type ControlWire struct {
	Data []byte // the JSON envelope; shared, read only
	Tag  uint64
}

// NewControlWire encodes e and tags it (protocol.ControlTag).
func NewControlWire(e protocol.Envelope) *ControlWire {
	data := protocol.Encode(e)
	return &ControlWire{Data: data, Tag: protocol.ControlTag(data)}
}

// ControlWire returns user's control envelope encoded and tagged, as
// the user's Offer's Control encodes. It builds no offer and encodes
// nothing once the user's combination of level and flag answers has
// been seen: there are at most offerKeys of them. Poll answers carry it,
// and every new session starts with it (core.Config.Greeting).
func (p *Policy) ControlWire(user string) *ControlWire {
	if p == nil {
		return NewControlWire(p.Offer(user).Control())
	}
	k := p.offerKey(user)
	if w := p.wires[k].Load(); w != nil {
		return w
	}
	// Built from the key alone, so that a level or a flag that changed
	// since the key was read cannot put one offer under another's key.
	w := NewControlWire(p.limit(OfferFor(Level(k>>6), keyFlags(k), "")).Control())
	p.wires[k].Store(w)
	return w
}

// keyFlags answers the flags OfferFor consults from an offerKey's bits.
type keyFlags int

func (k keyFlags) On(name, _ string) bool {
	bit := 0
	switch name {
	case FlagSSE:
	case FlagWebSocket:
		bit = 1
	case core.FeatureFiles:
		bit = 2
	case core.FeaturePresence:
		bit = 3
	case core.FeatureTyping:
		bit = 4
	case core.FeatureReadReceipts:
		bit = 5
	default:
		panic("degrade: offerKey does not hold flag " + name)
	}
	return k&(1<<bit) != 0
}

// offerKeys is the number of distinct offerKey values.
const offerKeys = (int(MaxLevel) + 1) << 6

// offerKey packs what OfferFor's answer for user depends on, besides the
// Policy's fixed fields: the level and the six flag answers, in the bits
// keyFlags reads them from.
func (p *Policy) offerKey(user string) int {
	l, flags := p.Level(), p.flags()
	on := func(name string) bool { return flags == nil || flags.On(name, user) }
	k := int(min(max(l, 0), MaxLevel))
	for _, b := range [...]bool{
		FeatureOn(l, flags, user, core.FeatureReadReceipts),
		FeatureOn(l, flags, user, core.FeatureTyping),
		FeatureOn(l, flags, user, core.FeaturePresence),
		FeatureOn(l, flags, user, core.FeatureFiles),
		l < LevelNoWS && on(FlagWebSocket),
		l < LevelPoll && on(FlagSSE),
	} {
		k <<= 1
		if b {
			k |= 1
		}
	}
	return k
}

// Offers returns whether transport is offered to a user, for the
// transports' upgrade checks.
func (p *Policy) Offers(transport string) func(user string) bool {
	return func(user string) bool { return p.Offer(user).Allows(transport) }
}

// Relieving reports whether the node relieves load (level 1 and up): its
// writers then batch harder (core.Config.Relieving).
func (p *Policy) Relieving() bool { return p.Level() >= LevelNoReceipts }

// Short reports whether polls answer at once (level 3).
func (p *Policy) Short() bool { return p.Level() >= LevelPoll }
