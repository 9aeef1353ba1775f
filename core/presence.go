package core

import (
	"context"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/chatd/chatd/core/protocol"
)

// Presence is coalesced. A join or leave does not fan out at once (that
// is O(members) per change, O(N²) for a room filling up); it marks the
// room, and every Config.PresenceInterval one pass sends each marked room
// its net changes, in one envelope (one per change to a session that did
// not ask for batches): a user who came and went within the interval
// costs nothing. In a room with more than Config.PresenceMaxMembers
// online, the pass sends one presence envelope with the count instead of
// per-user events; clients ask the presence API for the list when they
// need it.

// member is one user's presence in a room: open sessions, and a lease
// left by poll sessions.
type member struct {
	name  string
	count int       // open sessions whose presence is their lifetime
	until time.Time // lease end; zero: no lease
}

// change is a user's presence state at the last pass and now. Guarded by
// its room's mu.
type change struct {
	name        string
	was, online bool
}

// presenceMarks is the set of rooms with changes not yet sent.
type presenceMarks struct {
	mu    sync.Mutex
	rooms map[*room]struct{} // Guarded by mu.
}

// addMember records a session of user in the room. Called with r.mu held.
func (r *room) addMember(user, name string) {
	m := r.online[user]
	if m == nil {
		m = &member{name: name}
		r.online[user] = m
		r.changed(user, name, true)
	}
	m.count++
}

// dropMember ends a session of user. A session with a lease (poll) leaves
// the user online until the lease ends; the janitor then marks them
// offline. Called with r.mu held.
func (r *room) dropMember(user string, lease time.Time) {
	m := r.online[user]
	if m == nil {
		return
	}
	m.count--
	if lease.After(m.until) {
		m.until = lease
	}
	if m.count > 0 || !m.until.IsZero() {
		return
	}
	delete(r.online, user)
	r.changed(user, m.name, false)
}

// expireLeases removes users whose lease has run out and who have no open
// session.
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
		r.changed(user, m.name, false)
	}
}

// changed records that user went online or offline, when their presence
// is on, and marks the room for the next pass. Called with r.mu held.
func (r *room) changed(user, name string, online bool) {
	if !r.hub.cfg.Features(user, FeaturePresence) {
		return
	}
	c, ok := r.changes[user]
	if !ok {
		c.was = !online
	}
	c.name, c.online = name, online
	r.changes[user] = c
	if len(r.changes) == 1 && !ok {
		r.hub.marks.mark(r)
	}
}

func (p *presenceMarks) mark(r *room) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rooms[r] = struct{}{}
}

// take returns the marked rooms and clears the set.
func (p *presenceMarks) take() map[*room]struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.rooms) == 0 {
		return nil
	}
	out := p.rooms
	p.rooms = make(map[*room]struct{}, len(out))
	return out
}

// startPresence starts, once, the goroutine that sends coalesced presence
// every Config.PresenceInterval. Called with h.mu held, while not closing.
func (h *Hub) startPresence() {
	if h.presenceOn {
		return
	}
	h.presenceOn = true
	var since time.Time // the first pass put off in a row; owned by the pass's goroutine
	h.every(h.cfg.PresenceInterval, func() {
		behind := h.cfg.Behind != nil && h.cfg.Behind()
		var due bool
		if due, since = presenceDue(behind, h.cfg.Now(), since, h.cfg.PresenceMaxDelay); due {
			h.sendPresence()
		}
	})
}

// presenceDue decides whether a presence pass runs now: not while the
// node is behind, unless the passes have been put off for maxDelay since
// the first of them (since; zero when the last pass ran). It returns the
// since of the next decision.
func presenceDue(behind bool, now, since time.Time, maxDelay time.Duration) (bool, time.Time) {
	if !behind {
		return true, time.Time{}
	}
	if since.IsZero() {
		since = now
	}
	if now.Sub(since) < maxDelay {
		return false, since
	}
	return true, time.Time{}
}

// FlushPresence sends every room its presence changes pending now, as the
// pass every Config.PresenceInterval does. It is for tests, which set a
// long interval so that a pass happens only when they say.
func (h *Hub) FlushPresence() { h.sendPresence() }

// sendPresence sends every marked room its net presence changes.
func (h *Hub) sendPresence() {
	for r := range h.marks.take() {
		r.sendPresence()
	}
}

// sendPresence sends, through the broker, the room's net changes since
// the last pass: per user in a room of at most PresenceMaxMembers, else
// the count. On a cluster engine the changes first go to the engine,
// which keeps the room's membership across nodes and says which of them
// changed a user's state cluster-wide (a user online on two nodes who
// leaves one stays online) and how many are online in all.
func (r *room) sendPresence() {
	changes, online, ok := r.takeChanges()
	if !ok {
		return
	}
	if len(changes) == 0 && !r.owesCount() && (r.hub.cluster != nil || online <= r.hub.cfg.PresenceMaxMembers) {
		// Users came and went within the interval: nothing to say, and
		// no need to ask a cluster engine (its count cannot have moved
		// by this node's doing). Only a count room on one node, whose
		// list is never built, goes on to compare its count.
		return
	}
	if c := r.hub.cluster; c != nil {
		ctx, cancel := context.WithTimeout(context.Background(), clusterTimeout)
		var err error
		changes, online, err = c.Presence(ctx, r.name, changes)
		cancel()
		if err != nil {
			// Ephemeral, and not lost for good: a cluster engine keeps
			// its node's membership and re-applies it when the backend
			// answers again. Logged at debug: an outage would log this
			// for every room every pass, and the engine logs the outage.
			r.hub.cfg.Logger.Debug("presence: cluster update failed", "room", r.name, "err", err)
			r.hub.metrics.dropped.WithLabelValues("presence_cluster").Inc()
			return
		}
	}
	for _, e := range r.presenceEnvelopes(changes, online) {
		r.hub.broker.Broadcast(r.name, e)
	}
}

// takeChanges takes the room's net changes since the last pass, sorted by
// user, and the number of users online here. ok is false for a room that
// is gone. On one node, a room above PresenceMaxMembers announces only
// its count, so the per-user list is not built.
func (r *room) takeChanges() (out []PresenceChange, online int, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	changes := r.changes
	r.changes = make(map[string]change)
	if r.dead {
		return nil, 0, false
	}
	if r.hub.cluster == nil && len(r.online) > r.hub.cfg.PresenceMaxMembers {
		return nil, len(r.online), true
	}
	for user, c := range changes {
		if c.online != c.was {
			out = append(out, PresenceChange{User: user, Name: c.name, Online: c.online})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].User < out[j].User })
	return out, len(r.online), true
}

// presenceEnvelopes returns the envelopes that announce changes in a room
// with online users: one for all of a pass's changes (protocol.MaxBatch
// at most; the plain per-user form for one change), or the count in a
// room above PresenceMaxMembers (only when it moved since the last count
// sent, and no sooner than its pace allows: see countPace). A room of 100
// filling up once cost each member a presence envelope per arrival: a
// million in a 10k reconnect storm.
func (r *room) presenceEnvelopes(changes []PresenceChange, online int) []protocol.Envelope {
	r.mu.Lock()
	defer r.mu.Unlock()
	if online > r.hub.cfg.PresenceMaxMembers {
		r.countOwed = false
		if online == r.counted {
			return nil
		}
		now := r.hub.cfg.Now()
		if pace := r.countPace(online); pace > 0 && now.Sub(r.countedAt) < pace {
			// Not yet: a later pass sends the count as it is then.
			r.countOwed = true
			r.hub.marks.mark(r)
			return nil
		}
		r.counted, r.countedAt = online, now
		return []protocol.Envelope{{Type: protocol.TypePresence, Room: r.name, Count: protocol.Ptr(online)}}
	}
	r.counted, r.countOwed = 0, false
	out := make([]protocol.Envelope, 0, (len(changes)+protocol.MaxBatch-1)/protocol.MaxBatch)
	for batch := range slices.Chunk(changes, protocol.MaxBatch) {
		if len(batch) == 1 {
			out = append(out, presenceEnvelope(r.name, batch[0].User, batch[0].Name, batch[0].Online))
			continue
		}
		out = append(out, protocol.Envelope{Type: protocol.TypePresence, Room: r.name, Changes: batch})
	}
	return out
}

// countPace is the least time between two counts sent to a room of online
// members: PresenceInterval for each PresenceCountPace of them, at most
// ten intervals; none for a room within one pace (Config.PresenceCountPace).
func (r *room) countPace(online int) time.Duration {
	cfg := &r.hub.cfg
	if cfg.PresenceCountPace <= 0 || online <= cfg.PresenceCountPace {
		return 0
	}
	return min(cfg.PresenceInterval*time.Duration(online)/time.Duration(cfg.PresenceCountPace), 10*cfg.PresenceInterval)
}

// owesCount reports whether a count waits for its pace.
func (r *room) owesCount() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.countOwed
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

func presenceEnvelope(room, user, name string, online bool) protocol.Envelope {
	return protocol.Envelope{Type: protocol.TypePresence, Room: room, User: user, Name: name,
		Online: protocol.Ptr(online)}
}
