package degrade

import (
	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/protocol"
)

// Level is a degradation level, 0 (everything on) to 3 (short polling).
type Level int

// The levels.
const (
	LevelNormal     Level = 0 // everything on, subject to flags
	LevelNoReceipts Level = 1 // receipts and typing stop fanning out
	LevelNoWS       Level = 2 // WebSocket off
	LevelPoll       Level = 3 // SSE off too; poll answers at once
	MaxLevel              = LevelPoll
)

// Transport names, as negotiate offers them.
const (
	WebSocket = "websocket"
	SSE       = "sse"
	Poll      = "poll"
)

// Flag names the policy consults.
const (
	FlagWebSocket = "transport.websocket"
	FlagSSE       = "transport.sse"
)

// Flags answers whether a flag is on for a user; featureflags.Set is one.
type Flags interface {
	On(name, user string) bool
}

// Offer is what one user is offered at one level.
type Offer struct {
	Level          int             `json:"level"`
	Transports     []string        `json:"transports"`
	Features       map[string]bool `json:"features"`
	PollIntervalMS int64           `json:"poll_interval_ms"`
}

// PollInterval is the short-poll interval clients are told, in ms.
const PollInterval = 5000

// OfferFor computes user's offer at level l under flags. A level overrides
// a flag downward, never upward; poll is always offered as the floor.
func OfferFor(l Level, flags Flags, user string) Offer {
	on := func(name string) bool { return flags == nil || flags.On(name, user) }
	o := Offer{Level: int(l), PollIntervalMS: PollInterval, Features: map[string]bool{
		core.FeatureReadReceipts: FeatureOn(l, flags, user, core.FeatureReadReceipts),
		core.FeatureTyping:       FeatureOn(l, flags, user, core.FeatureTyping),
		core.FeaturePresence:     FeatureOn(l, flags, user, core.FeaturePresence),
		core.FeatureFiles:        FeatureOn(l, flags, user, core.FeatureFiles),
	}}
	if l < LevelNoWS && on(FlagWebSocket) {
		o.Transports = append(o.Transports, WebSocket)
	}
	if l < LevelPoll && on(FlagSSE) {
		o.Transports = append(o.Transports, SSE)
	}
	o.Transports = append(o.Transports, Poll)
	return o
}

// FeatureOn reports whether feature is on for user at level l: the hub's
// hot-path question, answered without building an offer.
func FeatureOn(l Level, flags Flags, user, feature string) bool {
	if l >= LevelNoReceipts && (feature == core.FeatureReadReceipts || feature == core.FeatureTyping ||
		feature == core.FeatureCompression) {
		return false
	}
	if l >= LevelNoWS && feature == core.FeatureFiles {
		return false // uploads cost the most disk, memory and CPU per request
	}
	return flags == nil || flags.On(feature, user)
}

// Allows reports whether the offer includes transport.
func (o Offer) Allows(transport string) bool {
	for _, t := range o.Transports {
		if t == transport {
			return true
		}
	}
	return false
}

// Control returns the offer as a control envelope.
func (o Offer) Control() protocol.Envelope {
	return protocol.Envelope{Type: protocol.TypeControl, Level: protocol.Ptr(o.Level),
		Transports: o.Transports, Features: o.Features, PollIntervalMS: int(o.PollIntervalMS)}
}
