package core

import (
	"math/rand/v2"
	"sync"
	"time"

	"github.com/chatd/chatd/core/protocol"
)

// room is one room's local subscribers and presence on this node. It
// exists while at least one session has joined it.
type room struct {
	name string // Static after construction.
	hub  *Hub   // Static after construction.

	mu   sync.Mutex
	subs map[*Session]*sub // Guarded by mu.
	// order holds subs' subscriptions in the order fan-out offers them
	// frames: the order they joined in, but that a leave moves the last
	// one into its place (addSub, dropSub). Guarded by mu.
	order       []*sub
	online      map[string]*member // by user; guarded by mu.
	head        uint64             // the newest seq published here; guarded by mu.
	dead        bool               // removed from hub.rooms; guarded by mu.
	changes     map[string]change  // presence changes since the last pass; guarded by mu.
	counted     int                // the count last sent, in a room past PresenceMaxMembers; guarded by mu.
	countedAt   time.Time          // when counted was sent; guarded by mu.
	countOwed   bool               // a moved count waits for its pace (PresenceCountPace); guarded by mu.
	recent      []recentEntry      // the newest published entries, contiguous up to head (recent.go); guarded by mu.
	recentBytes int                // the size of recent's entries; guarded by mu.
}

// sub is one session's subscription to one room. Guarded by its room's mu.
type sub struct {
	last    uint64   // last seq enqueued to the session
	live    bool     // false while catching up from the store
	syncing bool     // a catch-up is running
	s       *Session // the subscriber
	at      int      // its index in the room's order
}

// addSub subscribes s with sb. Called with r.mu held.
func (r *room) addSub(s *Session, sb *sub) {
	r.dropSub(s)
	sb.s, sb.at = s, len(r.order)
	r.order = append(r.order, sb)
	r.subs[s] = sb
}

// dropSub unsubscribes s, and reports whether it was subscribed. Called
// with r.mu held.
func (r *room) dropSub(s *Session) bool {
	sb, ok := r.subs[s]
	if !ok {
		return false
	}
	delete(r.subs, s)
	last := len(r.order) - 1
	if sb.at != last {
		moved := r.order[last]
		r.order[sb.at], moved.at = moved, sb.at
	}
	r.order[last] = nil
	r.order = r.order[:last]
	return true
}

func (h *Hub) lookupRoom(name string) *room {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.rooms[name]
}

// publishedHead returns the newest seq this node has published in room:
// every seq up to it is stored. 0 when no session here follows the room.
func (h *Hub) publishedHead(name string) uint64 {
	r := h.lookupRoom(name)
	if r == nil {
		return 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.head
}

// acquireRoom returns the room, creating it, with its mu held and not dead.
func (h *Hub) acquireRoom(name string) *room {
	for {
		h.mu.Lock()
		r := h.rooms[name]
		if r == nil {
			h.broker.Subscribe(name)
			r = &room{name: name, hub: h, subs: make(map[*Session]*sub), online: make(map[string]*member),
				changes: make(map[string]change)}
			h.rooms[name] = r
		}
		h.mu.Unlock()
		r.mu.Lock()
		if !r.dead {
			return r
		}
		r.mu.Unlock()
	}
}

// releaseIfEmpty drops r from the hub once nobody is subscribed.
func (h *Hub) releaseIfEmpty(r *room) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.subs) == 0 && len(r.online) == 0 && len(r.changes) == 0 && !r.dead {
		r.dead = true
		r.forgetRecent()
		delete(h.rooms, r.name)
		h.broker.Unsubscribe(r.name)
	}
}

// publish enqueues m to every live subscriber. A subscriber that sees a
// gap turns to catching up; one whose queue overflows is closed as slow
// after the lock is released.
func (r *room) publish(m protocol.Message, now time.Time) {
	frame := messageFrame(m)
	frame.published = now
	frame.shared = new(shared)
	var slow []*Session
	r.mu.Lock()
	r.head = max(r.head, m.Seq)
	r.remember(m, frame)
	n := len(r.order)
	start := 0
	if n > 0 {
		start = rand.N(n)
	}
	for i := range n {
		sb := r.order[(start+i)%n]
		s := sb.s
		if !sb.live || m.Seq <= sb.last {
			continue
		}
		if m.Seq > sb.last+1 {
			sb.live = false
			r.startCatchUp(s, sb)
			continue
		}
		if !s.offer(frame) {
			slow = append(slow, s)
			continue
		}
		sb.last = m.Seq
	}
	r.mu.Unlock()
	for _, s := range slow {
		s.Close(DisconnectSlow)
	}
}

// startCatchUp runs a catch-up for s in its own goroutine unless one is
// running. Called with r.mu held.
func (r *room) startCatchUp(s *Session, sb *sub) {
	if sb.syncing {
		return
	}
	sb.syncing = true
	s.goCatchUp(r, sb)
}

// broadcast enqueues an ephemeral envelope to the room's sessions, except
// those of user skip when skip is set. Ephemeral frames that do not fit
// are dropped and counted, never closing the session. A batched receipt
// or presence envelope goes as it is to sessions that read batches
// (SessionOptions.Batched), and as its plain envelopes to the others.
func (r *room) broadcast(e protocol.Envelope, skip string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.broadcastLocked(e, skip)
}

// broadcastLocked is broadcast with r.mu held.
func (r *room) broadcastLocked(e protocol.Envelope, skip string) {
	frame := envelopeFrame(e)
	frame.ephemeral = true
	frame.lazy = e.Type == protocol.TypePresence && e.Count != nil
	frame.shared = new(shared)
	batched := e.Batched()
	var plain []Frame // e's plain frames, encoded on first need
	for _, sb := range r.order {
		s := sb.s
		if skip != "" && s.user == skip {
			continue
		}
		if batched && !s.opts.Batched {
			if plain == nil {
				plain = ephemeralFrames(e.Unbatch())
			}
			for _, f := range plain {
				if !s.offer(f) {
					r.hub.drop(dropQueueFull)
				}
			}
			continue
		}
		if !s.offer(frame) {
			r.hub.drop(dropQueueFull)
		}
	}
}

// ephemeralFrames encodes envelopes as ephemeral frames, each once for
// every session it goes to.
func ephemeralFrames(envs []protocol.Envelope) []Frame {
	out := make([]Frame, len(envs))
	for i, e := range envs {
		out[i] = envelopeFrame(e)
		out[i].ephemeral = true
		out[i].shared = new(shared)
	}
	return out
}
