package core

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// limiters holds per-user send limiters and per-user-and-room typing
// throttles. Idle entries are swept lazily, so it starts no goroutine.
type limiters struct {
	rate  rate.Limit       // Static after construction.
	burst int              // Static after construction.
	now   func() time.Time // Static after construction.

	mu        sync.Mutex
	send      map[string]*rate.Limiter // by user; guarded by mu.
	typing    map[string]time.Time     // by user+"\x00"+room; guarded by mu.
	lastSweep time.Time                // Guarded by mu.
}

const sweepEvery = time.Minute

func newLimiters(perSec float64, burst int, now func() time.Time) *limiters {
	return &limiters{rate: rate.Limit(perSec), burst: burst, now: now,
		send: make(map[string]*rate.Limiter), typing: make(map[string]time.Time), lastSweep: now()}
}

// allowSend reports whether user may send now, taking a token if so.
func (l *limiters) allowSend(user string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.sweep(now)
	lim := l.send[user]
	if lim == nil {
		lim = rate.NewLimiter(l.rate, l.burst)
		l.send[user] = lim
	}
	return lim.AllowN(now, 1)
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
	for user, lim := range l.send {
		if lim.TokensAt(now) >= float64(l.burst) {
			delete(l.send, user)
		}
	}
	for key, t := range l.typing {
		if now.Sub(t) > sweepEvery {
			delete(l.typing, key)
		}
	}
}
