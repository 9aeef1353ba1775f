package poll

import (
	"slices"
	"sync"
	"time"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/core/protocol"
)

// maxKeptPerUser bounds the sessions kept for one user on this node. A
// kept session counts against the user's connection cap like any other
// (Config.MaxConnsPerUser in core), and a client behind a balancer that
// spreads its polls over several nodes leaves one on each, so a user with
// several tabs would otherwise fill the cap with sessions nobody takes.
const maxKeptPerUser = 2

// keeper holds the sessions of answered polls until the client's next
// poll takes one over, or Config.Keep passes. A poll that resumes from
// the exact cursor of a kept session's last answer, for the same
// identity and rooms, carries on with that session: it skips the
// session's opening, its joins and their store reads, and its closing,
// and it gets what arrived between the two polls at once. Any other poll
// (another cursor, since=, another node) opens a session of its own, as
// every poll did before, so the keeper is a cache: what it holds never
// decides which messages a client gets, only how cheaply, and whether a
// message edited or deleted between two polls comes as it was sent
// (kept: the live frames) or as it is now (a catch-up from the store).
type keeper struct {
	keep time.Duration // Static after construction; 0: keep nothing.

	mu     sync.Mutex
	byUser map[string][]*conn // oldest first, at most maxKeptPerUser each; guarded by mu.
}

// put keeps c's session for the client's next poll, which must present
// pos. It reports false, keeping nothing, when keeping is off or the
// session is ending; the caller then closes it. Past maxKeptPerUser, the
// user's oldest kept session is closed. Two sessions kept for the same
// position (two devices of one user, in step) are both kept: either
// carries on exactly from it.
func (k *keeper) put(c *conn, pos position) bool {
	if k.keep <= 0 || c.sess.Context().Err() != nil {
		return false
	}
	var evict []*conn
	k.mu.Lock()
	// Checked under k.mu: a session that closes from now on finds c kept
	// in remove.
	if c.ended() {
		k.mu.Unlock()
		return false
	}
	kept := k.byUser[pos.id.User]
	// Two sessions kept for one client's position (two polls of one
	// client that raced): the next poll may take either, whose deflate
	// history need not be its window. A client that sends no key
	// (X-Chat-Client) cannot be told from the user's other keyless
	// devices at all, one of which may have been at this position a
	// moment ago and polls from it next: its stream never goes on.
	if pos.client == "" {
		c.z.live = false
	}
	for _, o := range kept {
		if (c.z.live || o.z.live) && o.pos.matches(pos.id, pos.client, pos.rooms, pos.cur) {
			o.z.live, c.z.live = false, false
		}
	}
	if len(kept) >= maxKeptPerUser {
		evict = append(evict, kept[0])
		kept = slices.Delete(kept, 0, 1)
	}
	for _, o := range evict {
		o.kept = false
	}
	c.pos, c.kept, c.keptAt = pos, true, time.Now()
	if k.byUser == nil {
		k.byUser = make(map[string][]*conn)
	}
	k.byUser[pos.id.User] = append(kept, c)
	// A timer still set from an earlier keep is left as it is: it fires
	// before this keep's end, and expire sets it again for the rest. A
	// busy client's session is kept and taken several times a second,
	// and stopping and setting its timer each time (two changes to the
	// runtime's timers) was about 2% of the node under a broadcast to
	// 5,000 poll clients; now it is set about once a Keep.
	switch {
	case c.expiry == nil:
		c.expiry = time.AfterFunc(k.keep, func() { k.expire(c) })
		c.armed = true
	case !c.armed:
		c.expiry.Reset(k.keep)
		c.armed = true
	}
	k.mu.Unlock()
	for _, o := range evict {
		endKept(o)
	}
	return true
}

// take returns the session kept for a poll by id of rooms from cur, or
// nil. A session that is ending is left to end: the poll opens its own.
// The user's other sessions kept for the same rooms, from another
// cursor, are closed: the client resumes from an older answer (its last
// one was lost) or has moved on, and no poll of its will take them.
func (k *keeper) take(id auth.Identity, client string, rooms []string, cur protocol.Cursor) *conn {
	if k.keep <= 0 {
		return nil
	}
	k.mu.Lock()
	kept := k.byUser[id.User]
	i := slices.IndexFunc(kept, func(o *conn) bool { return o.pos.matches(id, client, rooms, cur) })
	return k.claim(id.User, kept, i, rooms, cur)
}

// takeQuery is take for a poll whose query (see httpx.ResumeQuery) has
// the same rooms= and cursor= values as the poll and the answer that
// kept a session, rooms and cursor: it carries on from that session's
// position without parsing them again. With no such session it takes
// nothing and closes nothing; the poll then parses its query and asks
// take.
func (k *keeper) takeQuery(id auth.Identity, client, rooms, cursor string) *conn {
	if k.keep <= 0 || cursor == "" {
		return nil
	}
	k.mu.Lock()
	kept := k.byUser[id.User]
	i := slices.IndexFunc(kept, func(o *conn) bool {
		return o.pos.cursor == cursor && o.pos.query == rooms && o.pos.client == client && sameIdentity(o.pos.id, id)
	})
	if i < 0 {
		k.mu.Unlock()
		return nil
	}
	return k.claim(id.User, kept, i, kept[i].pos.rooms, kept[i].pos.cur)
}

// takeConn is takeQuery for a poll that its connection's note (see
// Handler.repeat) shows to carry on from c's position after the answer
// whose cursor was cursor, by id: it takes c if c is still kept there,
// as takeQuery would have found it, and nothing otherwise (c was taken
// and kept again since, from another position, or let go).
func (k *keeper) takeConn(c *conn, id auth.Identity, cursor string) *conn {
	if k.keep <= 0 {
		return nil
	}
	k.mu.Lock()
	if !c.kept || c.pos.cursor != cursor || !sameIdentity(c.pos.id, id) {
		k.mu.Unlock()
		return nil
	}
	kept := k.byUser[id.User]
	return k.claim(id.User, kept, slices.Index(kept, c), c.pos.rooms, c.pos.cur)
}

// claim takes kept[i], the user's kept session that a poll of rooms from
// cur carries on with (none if i < 0), out of the keeper, with every
// other one kept for the same rooms from another cursor, then unlocks
// k.mu and closes those. It returns kept[i] unless its session is
// ending. Called with k.mu held.
func (k *keeper) claim(user string, kept []*conn, i int, rooms []string, cur protocol.Cursor) *conn {
	var c *conn
	if i >= 0 {
		c = kept[i]
	}
	var evict []*conn
	for j := 0; j < len(kept); j++ {
		o := kept[j]
		if o != c {
			if !slices.Equal(o.pos.rooms, rooms) || sameCursor(o.pos.cur, cur) {
				continue
			}
			evict = append(evict, o)
		}
		o.kept = false
		if o != c && o.expiry.Stop() { // c's fires for nothing, or for its next keep (see put)
			o.armed = false
		}
		kept = slices.Delete(kept, j, j+1)
		j--
	}
	if len(kept) == 0 {
		delete(k.byUser, user)
	} else {
		k.byUser[user] = kept
	}
	k.mu.Unlock()
	for _, o := range evict {
		endKept(o)
	}
	if c == nil {
		return nil
	}
	if c.sess.Context().Err() != nil || c.ended() {
		endKept(c) // it was ending: make sure
		return nil
	}
	return c
}

// unlink removes kept[i] from the user's list. Called with k.mu held.
func (k *keeper) unlink(user string, kept []*conn, i int) {
	kept = slices.Delete(kept, i, i+1)
	if len(kept) == 0 {
		delete(k.byUser, user)
		return
	}
	k.byUser[user] = kept
}

// remove takes c out of the keeper, if it is there: its session closed.
func (k *keeper) remove(c *conn) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if c.expiry != nil && c.expiry.Stop() {
		c.armed = false
	}
	if !c.kept {
		return
	}
	c.kept = false
	c.z.drop()
	user := c.pos.id.User
	if i := slices.Index(k.byUser[user], c); i >= 0 {
		k.unlink(user, k.byUser[user], i)
	}
}

// expire closes c's session if it is still kept and Keep has passed
// since: no poll took it. A timer that fires for an earlier keep finds
// c taken, and does nothing, or kept again since, and is set again for
// the rest of that keep.
func (k *keeper) expire(c *conn) {
	k.mu.Lock()
	since := time.Since(c.keptAt)
	stale := !c.kept || since < k.keep
	c.armed = c.kept && since < k.keep
	if c.armed {
		c.expiry.Reset(k.keep - since)
	}
	if !stale {
		c.kept = false
		user := c.pos.id.User
		if i := slices.Index(k.byUser[user], c); i >= 0 {
			k.unlink(user, k.byUser[user], i)
		}
	}
	k.mu.Unlock()
	if !stale {
		endKept(c)
	}
}

// evictUser closes every session kept for user, and reports whether
// there was one: a poll refused for the user's connection cap retries
// once they are gone.
func (k *keeper) evictUser(user string) bool {
	k.mu.Lock()
	kept := k.byUser[user]
	delete(k.byUser, user)
	for _, c := range kept {
		c.kept = false
	}
	k.mu.Unlock()
	for _, c := range kept {
		endKept(c)
	}
	return len(kept) > 0
}

// matches reports whether a poll by id of rooms from cur carries on from
// s: the same identity (a new token may have narrowed the rooms, or end
// sooner), the same rooms in the same order, and the same cursor.
func (s position) matches(id auth.Identity, client string, rooms []string, cur protocol.Cursor) bool {
	return sameIdentity(s.id, id) && s.client == client && slices.Equal(s.rooms, rooms) && sameCursor(s.cur, cur)
}

func sameIdentity(a, b auth.Identity) bool {
	return a.User == b.User && a.Name == b.Name && a.Admin == b.Admin && a.Expires.Equal(b.Expires) &&
		(a.Rooms == nil) == (b.Rooms == nil) && slices.Equal(a.Rooms, b.Rooms)
}

func sameCursor(a, b protocol.Cursor) bool {
	if len(a) != len(b) {
		return false
	}
	for room, seq := range a {
		if s, ok := b[room]; !ok || s != seq {
			return false
		}
	}
	return true
}

// endKept ends a kept session that no poll takes from here: its deflate
// history goes back to its pool, and the session closes. Called without
// k.mu.
func endKept(c *conn) {
	c.z.drop()
	c.sess.Close(core.DisconnectNormal)
}
