package core

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// limiters holds per-user send and read limiters and per-user-and-room typing
// throttles. Idle entries are swept lazily, so it starts no goroutine.
type limiters struct {
	now func() time.Time // Static after construction.

	mu        sync.Mutex
	send      bucket               // by user; guarded by mu.
	read      bucket               // by user; guarded by mu.
	list      bucket               // by user: room-list changes (listRate); guarded by mu.
	typing    map[string]time.Time // by user+"\x00"+room; guarded by mu.
	lastSweep time.Time            // Guarded by mu.
}

// bucket is one per-user token-bucket limit. Guarded by its limiters' mu.
type bucket struct {
	rate  rate.Limit // Static after construction.
	burst int        // Static after construction.
	users map[string]*rate.Limiter
}

func newBucket(perSec float64, burst int) bucket {
	return bucket{rate: rate.Limit(perSec), burst: burst, users: make(map[string]*rate.Limiter)}
}

// allow takes a token for user at now, if there is one.
func (b *bucket) allow(user string, now time.Time) bool {
	lim := b.users[user]
	if lim == nil {
		lim = rate.NewLimiter(b.rate, b.burst)
		b.users[user] = lim
	}
	return lim.AllowN(now, 1)
}

// sweep drops limiters that are full again.
func (b *bucket) sweep(now time.Time) {
	for user, lim := range b.users {
		if lim.TokensAt(now) >= float64(b.burst) {
			delete(b.users, user)
		}
	}
}

const sweepEvery = time.Minute

func newLimiters(cfg Config) *limiters {
	return &limiters{now: cfg.Now, send: newBucket(cfg.SendRate, cfg.SendBurst),
		read: newBucket(cfg.ReadRate, cfg.ReadBurst), list: newBucket(listRate, listBurst),
		typing: make(map[string]time.Time), lastSweep: cfg.Now()}
}

// listRate and listBurst bound a user's room-list changes: each listing
// that reaches the store (POST /v1/join, a join on a stream) and each
// leave (POST /v1/leave, a leave frame) is a store write and an event to
// every session of the user. Unbounded, one token made 3,000 a second
// and took a core (a review, 7 December); a person joins or leaves a
// room a few times a minute.
const (
	listRate  = 5
	listBurst = 20
)

// allowList reports whether user may change their room list now.
func (l *limiters) allowList(user string) bool { return l.allow(&l.list, user) }

// allowSend reports whether user may send now, taking a token if so.
func (l *limiters) allowSend(user string) bool { return l.allow(&l.send, user) }

// allowRead reports whether user may record a read position now.
func (l *limiters) allowRead(user string) bool { return l.allow(&l.read, user) }

func (l *limiters) allow(b *bucket, user string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.sweep(now)
	return b.allow(user, now)
}

// allowTyping reports whether a typing event of user in room should fan
// out, at most one per interval.
func (l *limiters) allowTyping(user, room string, interval time.Duration) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.sweep(now)
	key := user + "\x00" + room
	if last, ok := l.typing[key]; ok && now.Sub(last) < interval {
		return false
	}
	l.typing[key] = now
	return true
}

// sweep drops limiters that are full again and stale typing marks.
// Called with mu held.
func (l *limiters) sweep(now time.Time) {
	if now.Sub(l.lastSweep) < sweepEvery {
		return
	}
	l.lastSweep = now
	l.send.sweep(now)
	l.read.sweep(now)
	l.list.sweep(now)
	for key, t := range l.typing {
		if now.Sub(t) > sweepEvery {
			delete(l.typing, key)
		}
	}
}
