package core

import (
	"context"
	"errors"
	"hash/fnv"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/core/protocol"
)

// A user's room list (GET /v1/rooms) is kept by the engine: a join adds
// the room, an explicit leave takes it out, and a message in a
// direct-message room adds the room for both of its users. Each change
// that adds or removes a room is told to the user's sessions through
// their stream (userstream.go).

// listedTTL is how long a node remembers that a room is in a user's
// list, so that joining it again (a poll client joins its rooms at every
// poll) costs the engine nothing.
const listedTTL = time.Minute

// maxListedCache bounds that memory; past it, lapsed entries go, and if
// that is not enough, all of them.
const maxListedCache = 1 << 16

// RoomEntry is one room of the user's list as GET /v1/rooms shows it.
type RoomEntry struct {
	Room   string             `json:"room"`
	Head   uint64             `json:"head"`   // the room's latest seq
	Read   uint64             `json:"read"`   // the user's read position
	Unread uint64             `json:"unread"` // seqs after read that are still retained
	Last   *protocol.Envelope `json:"last,omitempty"`
	DM     *protocol.Peer     `json:"dm,omitempty"` // a direct-message room's other user
}

// listed remembers which rooms are known to be in which user's list, and
// which were just left. It also orders a user's list changes of one room:
// a join's listing and an explicit leave run one at a time (lock), and a
// join that began before a leave does not put the room back (a poll that
// was in flight when its client left, say).
type listed struct {
	now func() time.Time // Static after construction.

	// By hash of user and room: one list change at a time. A stripe is
	// held across the listing's durable write, so the stripes bound the
	// listings in one group commit. With 64, 10,000 clients joining one
	// room at once kept thousands of frame workers waiting for a stripe
	// (18,600-19,300 goroutines at the peak, the store on disk, on the
	// 2-core Intel Xeon), and the node held 14.4-15.1 KiB a connection
	// once idle; with 1,024, 11,400-13,200 goroutines and 13.0-13.8 KiB
	// (docs/PERFORMANCE-ROUNDS.md, the round of 7 December, 08:45).
	// 8 KiB of locks.
	stripes [1024]sync.Mutex

	leaves atomic.Uint64 // explicit leaves so far; changed under mu

	mu sync.Mutex
	// One flat map rather than a map of rooms per user: at 10,000 users
	// with a room each, a map a user cost about 950 bytes, a flat entry
	// about 90 (plus the user's epoch).
	at    map[listKey]listMark // guarded by mu.
	epoch map[string]uint32    // a user's epoch, 0 when absent; guarded by mu.
}

// listKey names one room of one user's list.
type listKey struct{ user, room string }

// listMark is what a node knows of one room in one user's list.
type listMark struct {
	at    time.Time // when confirmed listed, or left
	gen   uint64    // for a leave, its number (listed.leaves)
	epoch uint32    // the user's epoch when set: a listing counts only in it
	left  bool      // an explicit leave took it out
}

func newListed(now func() time.Time) *listed {
	return &listed{now: now, at: make(map[listKey]listMark), epoch: make(map[string]uint32)}
}

// lock serialises list changes of room for user; call the result to
// unlock. Different users and rooms share a stripe about once in 1,024.
func (l *listed) lock(user, room string) (unlock func()) {
	h := fnv.New32a()
	_, _ = h.Write([]byte(user))
	_, _ = h.Write([]byte{0})
	_, _ = h.Write([]byte(room))
	m := &l.stripes[h.Sum32()%uint32(len(l.stripes))]
	m.Lock()
	return m.Unlock
}

// stamp returns the number of leaves so far: a join takes it when it
// begins, and listJoin compares it with the leaves that followed.
func (l *listed) stamp() uint64 { return l.leaves.Load() }

// recent reports whether room was confirmed in user's list within listedTTL.
func (l *listed) recent(user, room string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	m, ok := l.at[listKey{user, room}]
	return ok && !m.left && m.epoch == l.epoch[user] && l.now().Sub(m.at) < listedTTL
}

// leftAfter reports whether user left room, within listedTTL, after a
// join that took stamp began.
func (l *listed) leftAfter(user, room string, stamp uint64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	m, ok := l.at[listKey{user, room}]
	return ok && m.left && m.gen > stamp && l.now().Sub(m.at) < listedTTL
}

// mark records that room is in user's list now, as the engine's
// AddUserRoom just said (added: it was not there before). An add may
// have dropped the list's oldest room, to keep it within
// MaxListedRooms, and which one the engine does not say: so after one,
// the user's other rooms are no longer known to be listed (the user's
// epoch moves on, and listings of an earlier epoch do not count), and
// their next joins list them through the engine again. Explicit leaves
// stay known.
func (l *listed) mark(user, room string, added bool) {
	if added {
		l.mu.Lock()
		l.epoch[user]++
		l.mu.Unlock()
	}
	l.put(user, room, listMark{})
}

// forget records that user left room now.
func (l *listed) forget(user, room string) {
	l.put(user, room, listMark{left: true})
}

func (l *listed) put(user, room string, m listMark) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if len(l.at) >= maxListedCache || len(l.epoch) >= maxListedCache {
		l.sweep(now)
	}
	m.at = now
	if m.left {
		m.gen = l.leaves.Add(1)
	}
	l.set(user, room, m)
}

// sweep drops lapsed marks and listings of past epochs, and puts the
// listings left in epoch 0 with the epochs forgotten; if the cache is
// still full, it drops everything. Called with mu held.
func (l *listed) sweep(now time.Time) {
	for k, e := range l.at {
		switch {
		case now.Sub(e.at) >= listedTTL || (!e.left && e.epoch != l.epoch[k.user]):
			delete(l.at, k)
		case e.epoch != 0:
			e.epoch = 0
			l.at[k] = e
		}
	}
	clear(l.epoch)
	if len(l.at) >= maxListedCache {
		clear(l.at)
	}
}

// set puts m as user's mark of room, in the user's epoch. Called with
// mu held.
func (l *listed) set(user, room string, m listMark) {
	m.epoch = l.epoch[user]
	l.at[listKey{user, room}] = m
}

// Remember puts room in the user's list and, if it was not there, tells
// the user's sessions (reason joined), as a join on a stream opened with
// the token does: for a client whose stream a ticket opened, whose joins
// are not remembered (auth.Identity.Ticket). A room the identity may not
// use is forbidden.
func (h *Hub) Remember(ctx context.Context, id auth.Identity, room string) error {
	stamp := h.listed.stamp()
	if err := joinable(id, room); err != nil {
		return err
	}
	if id.Ticket {
		return protocol.Errorf(protocol.CodeUnauthorized, "a ticket remembers no room: send the token")
	}
	if err := h.listJoin(ctx, id.User, room, stamp); err != nil {
		if errors.Is(err, errListRate) {
			return err
		}
		return internal(err)
	}
	return nil
}

// errListRate answers a room-list change past the user's rate (see
// listRate): a leave, or a join by request; a join on a stream past it
// joins without being listed.
var errListRate = protocol.Errorf(protocol.CodeRateLimited,
	"changing your room list faster than %d rooms a second", listRate)

// listJoin puts room in user's list after a join that began at stamp
// and, if it was not there, tells the user's sessions (reason joined). A
// leave of the room since the join began wins: the room stays out. A
// failure to list is returned (a join logs it: the join itself has
// succeeded), one to tell is logged.
func (h *Hub) listJoin(ctx context.Context, user, room string, stamp uint64) error {
	if h.listed.recent(user, room) {
		return nil
	}
	defer h.listed.lock(user, room)()
	if h.listed.recent(user, room) || h.listed.leftAfter(user, room, stamp) {
		return nil
	}
	// Every listing that reaches the store counts, whether the join came
	// by request or on a stream: join and leave frames on a socket made
	// 500 listings a second.
	if !h.limits.allowList(user) {
		return errListRate
	}
	added, err := h.people.AddUserRoom(ctx, user, room)
	if err != nil {
		return err
	}
	h.listed.mark(user, room, added)
	if added {
		if err := h.tell(ctx, user, userEvent{Room: room, Reason: protocol.ReasonJoined}, ""); err != nil {
			h.cfg.Logger.Warn("rooms: telling a join failed", "user", user, "room", room, "err", err)
		}
	}
	return nil
}

// Leave takes room out of the user's room list and, if it was there,
// tells every session of theirs (reason left). A direct-message room that
// holds a message stays listed. It ends no subscription: a WebSocket
// leave frame does that too, and SSE and poll clients subscribe without
// the room from then on.
func (h *Hub) Leave(ctx context.Context, id auth.Identity, room string) error {
	if err := protocol.ValidRoom(room); err != nil {
		return err
	}
	if !h.limits.allowList(id.User) {
		return errListRate
	}
	return h.unlist(ctx, id, room)
}

// unlist is Leave past its rate limit: a session's leave frame takes its
// token before it unsubscribes (Session.handle), so that a refused leave
// changes nothing.
func (h *Hub) unlist(ctx context.Context, id auth.Identity, room string) error {
	if _, dm := auth.DMPeer(room, id.User); dm {
		p, err := h.store.Since(ctx, room, 0, 0)
		if err != nil {
			return internal(err)
		}
		if p.Head > 0 {
			return nil
		}
	}
	defer h.listed.lock(id.User, room)()
	h.listed.forget(id.User, room)
	removed, err := h.people.RemoveUserRoom(ctx, id.User, room)
	if err != nil {
		return internal(err)
	}
	if removed {
		if err := h.tell(ctx, id.User, userEvent{Room: room, Reason: protocol.ReasonLeft}, ""); err != nil {
			h.cfg.Logger.Warn("rooms: telling a leave failed", "user", id.User, "room", room, "err", err)
		}
	}
	return nil
}

// afterSend does what a stored message means beyond its room: a
// direct-message room is listed for both its users, each of whom is told (reason dm) when it is new to
// them or when this is the room's first message. The event of the first
// message carries a fixed id, so that a retried send (dup) that repeats
// it stores it once, and one that a crash lost after the message is
// stored is stored by the retry. Failures are logged: the message is
// stored, and the send succeeds.
func (h *Hub) afterSend(ctx context.Context, id auth.Identity, m protocol.Message) {
	peer, ok := auth.DMPeer(m.Room, id.User)
	if !ok {
		return
	}
	first := m.Seq == 1
	type side struct{ user, peer, peerName string }
	sides := []side{{user: peer, peer: id.User, peerName: id.Name}, {user: id.User, peer: peer}}
	if peer == id.User {
		sides = sides[:1]
	}
	for _, s := range sides {
		if !first && h.listed.recent(s.user, m.Room) {
			continue
		}
		added, err := h.listDM(ctx, s.user, m.Room)
		if err != nil {
			h.cfg.Logger.Warn("rooms: listing a DM failed", "user", s.user, "room", m.Room, "err", err)
			continue
		}
		if !added && !first {
			continue
		}
		if s.peerName == "" {
			un, _ := h.names.one(ctx, s.peer)
			s.peerName = nameOf(s.peer, un)
		}
		ev := userEvent{Room: m.Room, Reason: protocol.ReasonDM, Peer: s.peer, PeerName: s.peerName}
		if err := h.tell(ctx, s.user, ev, "dm|"+m.Room); err != nil {
			h.cfg.Logger.Warn("rooms: telling a DM failed", "user", s.user, "room", m.Room, "err", err)
		}
	}
}

// listDM puts a direct-message room in user's list, in turn with the
// user's other changes of it.
func (h *Hub) listDM(ctx context.Context, user, room string) (bool, error) {
	defer h.listed.lock(user, room)()
	added, err := h.people.AddUserRoom(ctx, user, room)
	if err == nil {
		h.listed.mark(user, room, added)
	}
	return added, err
}

// Rooms returns the user's room list: the rooms they joined (remembered
// across sessions until an explicit leave) and the direct-message rooms
// they are part of, at most MaxListedRooms, each with its head, the
// user's read position, the unread count, the newest message and, for a
// DM, the other user. Rooms the identity may no longer use (a narrower
// rooms claim) are left out. The newest conversation comes first; rooms
// with no message follow, by name.
//
// unread counts the seqs after the read position that are still retained:
// with no gaps in seq, head minus read, less what retention dropped. The
// user's own messages count like any other until they report a read
// position past them, as the bundled clients do for every message shown.
func (h *Hub) Rooms(ctx context.Context, id auth.Identity) ([]RoomEntry, error) {
	names, err := h.people.UserRooms(ctx, id.User)
	if err != nil {
		return nil, internal(err)
	}
	names = slices.DeleteFunc(names, func(room string) bool {
		return protocol.ValidRoom(room) != nil || id.CanAccess(room) != nil
	})
	states, err := h.people.RoomStates(ctx, id.User, names)
	if err != nil {
		return nil, internal(err)
	}
	peers := h.peers(ctx, id.User, names)
	out := make([]RoomEntry, 0, len(states))
	for _, st := range states {
		read := max(st.Read, h.reads.pendingFor(st.Room, id.User))
		e := RoomEntry{Room: st.Room, Head: st.Head, Read: read, DM: peers[st.Room]}
		if from := max(read, st.First-1); st.Head > from {
			e.Unread = st.Head - from
		}
		if st.Last != nil {
			last := st.Last.Envelope()
			e.Last = &last
		}
		out = append(out, e)
	}
	slices.SortStableFunc(out, func(a, b RoomEntry) int {
		switch {
		case a.Last != nil && b.Last != nil && a.Last.TS != b.Last.TS:
			if a.Last.TS > b.Last.TS {
				return -1
			}
			return 1
		case (a.Last == nil) != (b.Last == nil):
			if a.Last != nil {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Room, b.Room)
	})
	return out, nil
}

// peers returns the other user of each direct-message room among rooms,
// with the name they show as.
func (h *Hub) peers(ctx context.Context, user string, rooms []string) map[string]*protocol.Peer {
	byRoom := map[string]string{}
	var users []string
	for _, room := range rooms {
		if p, ok := auth.DMPeer(room, user); ok {
			byRoom[room] = p
			users = append(users, p)
		}
	}
	if len(users) == 0 {
		return nil
	}
	slices.Sort(users)
	names, _ := h.names.lookup(ctx, slices.Compact(users))
	out := make(map[string]*protocol.Peer, len(byRoom))
	for room, p := range byRoom {
		out[room] = &protocol.Peer{User: p, Name: nameOf(p, names[p])}
	}
	return out
}

// pendingFor returns user's read position in room that this node holds
// and has not stored yet; 0 if none.
func (q *readQueue) pendingFor(room, user string) uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.pending[room][user].seq
}
