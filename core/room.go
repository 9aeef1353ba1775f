package core

import (
	"sort"
	"sync"
	"time"

	"github.com/chatd/chatd/core/protocol"
)

// room is one room's local subscribers and presence on this node. It
// exists while at least one session has joined it.
type room struct {
	name string // Static after construction.
	hub  *Hub   // Static after construction.

	mu     sync.Mutex
	subs   map[*Session]*sub  // Guarded by mu.
	online map[string]*member // by user; guarded by mu.
	head   uint64             // the newest seq published here; guarded by mu.
	dead   bool               // removed from hub.rooms; guarded by mu.
}

// sub is one session's subscription to one room. Guarded by its room's mu.
type sub struct {
	last    uint64 // last seq enqueued to the session
	live    bool   // false while catching up from the store
	syncing bool   // a catch-up is running
}

// member is one user's presence in a room: open sessions, and a lease
// left by poll sessions.
type member struct {
	name  string
	count int       // open sessions whose presence is their lifetime
	until time.Time // lease end; zero: no lease
}

func (h *Hub) lookupRoom(name string) *room {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.rooms[name]
}

// acquireRoom returns the room, creating it, with its mu held and not dead.
func (h *Hub) acquireRoom(name string) *room {
	for {
		h.mu.Lock()
		r := h.rooms[name]
		if r == nil {
			r = &room{name: name, hub: h, subs: make(map[*Session]*sub), online: make(map[string]*member)}
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
	if len(r.subs) == 0 && len(r.online) == 0 && !r.dead {
		r.dead = true
		delete(h.rooms, r.name)
	}
}

// publish enqueues m to every live subscriber. A subscriber that sees a
// gap turns to catching up; one whose queue overflows is closed as slow
// after the lock is released.
func (r *room) publish(m protocol.Message, now time.Time) {
	frame := messageFrame(m)
	frame.published = now
	var slow []*Session
	r.mu.Lock()
	r.head = max(r.head, m.Seq)
	for s, sb := range r.subs {
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
// are dropped and counted, never closing the session.
func (r *room) broadcast(e protocol.Envelope, skip string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.broadcastLocked(e, skip)
}

// broadcastLocked is broadcast with r.mu held.
func (r *room) broadcastLocked(e protocol.Envelope, skip string) {
	frame := envelopeFrame(e)
	frame.ephemeral = true
	for s := range r.subs {
		if skip != "" && s.user == skip {
			continue
		}
		if !s.offer(frame) {
			r.hub.drop(dropQueueFull)
		}
	}
}

// addMember records a session of user in the room and reports whether
// the user has just come online. Called with r.mu held.
func (r *room) addMember(user, name string) bool {
	m := r.online[user]
	first := m == nil
	if first {
		m = &member{name: name}
		r.online[user] = m
	}
	m.count++
	return first
}

// dropMember ends a session of user and reports whether the user has just
// gone offline. A session with a lease (poll) leaves the user online until
// the lease ends; the janitor then announces them offline. Called with
// r.mu held.
func (r *room) dropMember(user string, lease time.Time) bool {
	m := r.online[user]
	if m == nil {
		return false
	}
	m.count--
	if lease.After(m.until) {
		m.until = lease
	}
	if m.count > 0 || !m.until.IsZero() {
		return false
	}
	delete(r.online, user)
	return true
}

// expireLeases removes users whose lease has run out and who have no open
// session, announcing them offline.
func (r *room) expireLeases(now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for user, m := range r.online {
		if m.until.IsZero() || m.until.After(now) {
			continue
		}
		m.until = time.Time{}
		if m.count > 0 {
			continue
		}
		delete(r.online, user)
		if r.hub.cfg.Features(user, FeaturePresence) {
			r.broadcastLocked(presenceEnvelope(r.name, user, m.name, false), "")
		}
	}
}

// presence lists the users online in the room, sorted by user id.
func (r *room) presence() []Member {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Member, 0, len(r.online))
	for user, m := range r.online {
		out = append(out, Member{User: user, Name: m.name})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].User < out[j].User })
	return out
}

// Member is one user present in a room.
type Member struct {
	User string `json:"user"`
	Name string `json:"name"`
}
