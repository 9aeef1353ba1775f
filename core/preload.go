package core

import (
	"context"
	"time"
)

// Bounds on what a hub reads from a UserLister when it is made: half of
// each cache, so that the caches take new users after it without being
// cleared (names.putLocked and listed.put clear a full cache), and a
// bound on the time, so that a node always starts. Reading 10,000 users
// with a room each from bbolt takes about 10 ms (18 ms with the file not
// yet in memory).
const (
	preloadMaxUsers = maxCachedNames / 2
	preloadMaxPairs = maxListedCache / 2
	preloadTime     = 2 * time.Second
)

// UsersAtStart returns how many users the hub read from its engine when
// it was made (see preloadUsers): more than none means a node that had
// clients before, which are likely coming back now. 0 when the engine
// cannot list its users.
func (h *Hub) UsersAtStart() int { return h.usersAtStart }

// preloadUsers fills the name cache and the room-list marks from the
// engine, if it can list its users, as if each had just been read: the
// caches' own rules (nameTTL, listedTTL) take it from there. It runs in
// New, before any session, so nothing the hub writes can race it. It
// stops at maxUsers users or maxPairs rooms listed, whichever comes
// first, and after preloadTime; an engine error leaves what was read.
func (h *Hub) preloadUsers(maxUsers, maxPairs int) (users, pairs int) {
	l, ok := h.people.(UserLister)
	if !ok || maxUsers <= 0 {
		return 0, 0
	}
	ctx, cancel := context.WithTimeout(context.Background(), preloadTime)
	defer cancel()
	start, now := time.Now(), h.cfg.Now() // as names.lookup: the TTLs count from before the read
	type read struct {
		user  string
		names UserNames
	}
	var got []read
	type mark struct{ user, room string }
	var marks []mark
	err := l.EachUser(ctx, func(user string, un UserNames, rooms [][]byte) bool {
		if len(got) >= maxUsers || len(marks)+len(rooms) > maxPairs {
			return false
		}
		got = append(got, read{user, un})
		for _, r := range rooms {
			marks = append(marks, mark{user, string(r)})
		}
		return ctx.Err() == nil
	})
	if err != nil {
		h.cfg.Logger.Warn("users: reading the engine's users at start failed; the rest are read as they come", "err", err)
	}
	h.names.mu.Lock()
	for _, r := range got {
		h.names.cache[r.user] = cachedName{UserNames: r.names, at: now}
	}
	h.names.mu.Unlock()
	h.listed.mu.Lock()
	for _, m := range marks {
		h.listed.set(m.user, m.room, listMark{at: now})
	}
	h.listed.mu.Unlock()
	h.cfg.Logger.Debug("users: names and room lists read at start", "users", len(got), "rooms", len(marks),
		"took", time.Since(start))
	return len(got), len(marks)
}
