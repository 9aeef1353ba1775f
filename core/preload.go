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
	start := time.Now()
	now := h.cfg.Now()
	h.names.mu.Lock()
	defer h.names.mu.Unlock()
	h.listed.mu.Lock()
	defer h.listed.mu.Unlock()
	err := l.EachUser(ctx, func(user string, un UserNames, rooms [][]byte) bool {
		if users >= maxUsers || pairs+len(rooms) > maxPairs {
			return false
		}
		h.names.cache[user] = cachedName{UserNames: un, at: now}
		for _, r := range rooms {
			h.listed.at[listedKey(user, string(r))] = listMark{at: now}
		}
		users++
		pairs += len(rooms)
		return ctx.Err() == nil
	})
	if err != nil {
		h.cfg.Logger.Warn("users: reading the engine's users at start failed; the rest are read as they come", "err", err)
	}
	h.cfg.Logger.Debug("users: names and room lists read at start", "users", users, "rooms", pairs,
		"took", time.Since(start))
	return users, pairs
}
