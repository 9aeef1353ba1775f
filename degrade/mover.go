package degrade

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/protocol"
)

// Timer is a pending call that can be cancelled; *time.Timer is one.
// Stop reports whether it cancelled the call before it started.
type Timer interface {
	Stop() bool
}

// Mover applies level changes to live sessions. It keeps at most one
// pending move per session: a new Apply replaces a session's pending move
// (the move reads the offer when it runs, so the newest level wins), and a
// session that ends drops its own. Its memory is therefore bounded by the
// open sessions, and no entry outlives its session. Set Hub and Offer; the
// rest of the zero value is ready. It is safe for concurrent use.
type Mover struct {
	Hub    *core.Hub               // Static after construction.
	Offer  func(user string) Offer // Static after construction.
	Window time.Duration           // control envelopes are spread over this; 10s. Static after construction.
	// MoveRate bounds how many sessions a change closes to move, per
	// second on average: when more must move than Window allows at this
	// rate, the window widens to moving/MoveRate. 250. Static after
	// construction.
	MoveRate float64
	// AfterFunc arms f to run once after d, like time.AfterFunc (the
	// default). Tests inject a manual clock. Static after construction.
	AfterFunc func(d time.Duration, f func()) Timer

	mu      sync.Mutex
	pending map[uint64]*pendingMove // by session id; guarded by mu.
}

// pendingMove is one session's pending move. All fields are guarded by
// Mover.mu.
type pendingMove struct {
	timer   Timer       // the armed move
	gen     uint64      // bumped on each re-arm; a timer whose gen is stale does nothing
	unwatch func() bool // stops the session-end watch (context.AfterFunc)
}

// Apply tells every open session its new offer at a random moment within
// the window, and closes with 4001 those whose transport is no longer
// offered. Clients on a lower tier that is now below their best offer
// read the control envelope and move up themselves. A session with a move
// already pending has it cancelled and re-armed, so rapid changes send one
// control envelope per session, not one per change.
//
// A moved client reconnects and resumes: about what a reconnect storm
// costs per client (a full core resumes about 2,000 a second), on a node
// that is changing level because it is short of something. Moving 10,000
// WebSocket clients to polls within 10 s, at full load, collapsed the
// node (docs/OPERATIONS.md, "The auto policy"), hence MoveRate: at 250 a
// second the moves take about an eighth of a core.
func (m *Mover) Apply() {
	window := m.Window
	if window <= 0 {
		window = 10 * time.Second
	}
	rate := m.MoveRate
	if rate <= 0 {
		rate = DefaultMoveRate
	}
	var sessions []*core.Session
	moving := 0
	m.Hub.ForEachSession(func(s *core.Session) {
		sessions = append(sessions, s)
		if !m.Offer(s.User()).Allows(s.TransportName()) {
			moving++
		}
	})
	window = max(window, time.Duration(float64(moving)/rate*float64(time.Second)))
	for _, s := range sessions {
		m.arm(s, time.Duration(rand.Int64N(int64(window))))
	}
}

// DefaultMoveRate is Mover.MoveRate's default: sessions moved per second.
const DefaultMoveRate = 250

// arm replaces s's pending move with one due after delay.
func (m *Mover) arm(s *core.Session, delay time.Duration) {
	ctx := s.Context()
	if ctx.Err() != nil {
		return // ended since ForEachSession listed it
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.pending == nil {
		m.pending = make(map[uint64]*pendingMove)
	}
	p := m.pending[s.ID()]
	if p == nil {
		p = &pendingMove{}
		m.pending[s.ID()] = p
		// Registered once per pending entry, not per Apply: the session's
		// context keeps no pile of watches. If ctx is already done, drop
		// runs at once and waits for mu.
		p.unwatch = context.AfterFunc(ctx, func() { m.drop(s.ID(), p) })
	} else {
		p.timer.Stop()
		p.gen++
	}
	gen := p.gen
	p.timer = m.afterFunc(delay, func() { m.fire(s, p, gen) })
}

func (m *Mover) afterFunc(d time.Duration, f func()) Timer {
	if m.AfterFunc != nil {
		return m.AfterFunc(d, f)
	}
	return time.AfterFunc(d, f)
}

// fire runs p's move if it is still s's current one. A timer that Stop
// could not cancel (it had already started) finds its gen stale and does
// nothing: the re-armed move will carry the newer offer.
func (m *Mover) fire(s *core.Session, p *pendingMove, gen uint64) {
	m.mu.Lock()
	if m.pending[s.ID()] != p || p.gen != gen {
		m.mu.Unlock()
		return
	}
	delete(m.pending, s.ID())
	p.unwatch()
	m.mu.Unlock()
	m.move(s)
}

// drop forgets a session that ended with a move pending.
func (m *Mover) drop(id uint64, p *pendingMove) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.pending[id] == p {
		delete(m.pending, id)
		p.timer.Stop()
	}
}

// pendingLen returns the number of sessions with a move pending.
func (m *Mover) pendingLen() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.pending)
}

func (m *Mover) move(s *core.Session) {
	o := m.Offer(s.User())
	s.Notify(o.Control())
	if !o.Allows(s.TransportName()) {
		s.Close(core.Disconnect{Code: protocol.CloseSwitchTransport, Reason: "switch transport"})
	}
}
