package brokertest

import (
	"sync"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/protocol"
)

// Lagging wraps an engine so that its publications to the hub can be held
// back and then released in order, as a loaded node's fan-out lags its
// commits: while they are held, the store has entries that the rooms
// have not published. Set Engine before the hub registers.
type Lagging struct {
	core.Engine

	mu   sync.Mutex // held across each hand-over to the hub, so that order is kept
	hub  core.Handler
	held [][]protocol.Message // guarded by mu
	hold bool                 // guarded by mu
}

// Register implements core.Broker: the hub registers with l, and l with
// the engine.
func (l *Lagging) Register(h core.Handler) {
	l.mu.Lock()
	l.hub = h
	l.mu.Unlock()
	l.Engine.Register(l)
}

// Publish implements core.Handler: it hands msgs to the hub, or keeps them
// while held.
func (l *Lagging) Publish(msgs []protocol.Message) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.hold {
		l.held = append(l.held, msgs)
		return
	}
	l.hub.Publish(msgs)
}

// Deliver implements core.Handler.
func (l *Lagging) Deliver(room string, e protocol.Envelope) { l.hub.Deliver(room, e) }

// Control implements core.Handler.
func (l *Lagging) Control(c core.Control) { l.hub.Control(c) }

// Hold keeps the publications from now on.
func (l *Lagging) Hold() {
	l.mu.Lock()
	l.hold = true
	l.mu.Unlock()
}

// Release hands the kept publications to the hub, in order, and stops
// keeping them.
func (l *Lagging) Release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, msgs := range l.held {
		l.hub.Publish(msgs)
	}
	l.held, l.hold = nil, false
}
