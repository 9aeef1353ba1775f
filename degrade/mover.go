package degrade

import (
	"math/rand/v2"
	"time"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/protocol"
)

// Mover applies level changes to live sessions.
type Mover struct {
	Hub    *core.Hub
	Offer  func(user string) Offer
	Window time.Duration // control envelopes are spread over this; 10s
}

// Apply tells every open session its new offer at a random moment within
// the window, and closes with 4001 those whose transport is no longer
// offered. Clients on a lower tier that is now below their best offer
// read the control envelope and move up themselves.
func (m *Mover) Apply() {
	window := m.Window
	if window <= 0 {
		window = 10 * time.Second
	}
	m.Hub.ForEachSession(func(s *core.Session) {
		delay := time.Duration(rand.Int64N(int64(window)))
		time.AfterFunc(delay, func() { m.move(s) })
	})
}

func (m *Mover) move(s *core.Session) {
	o := m.Offer(s.User())
	s.Notify(o.Control())
	if !o.Allows(s.TransportName()) {
		s.Close(core.Disconnect{Code: protocol.CloseSwitchTransport, Reason: "switch transport"})
	}
}
