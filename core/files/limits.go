package files

import (
	"context"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// maxLimiters bounds the per-user limiters one node keeps; past it, the
// idle ones (their bucket full again, so the same as new) are dropped.
const maxLimiters = 1 << 16

// rateLimits is a token bucket per user, on one node. Safe for concurrent
// use.
type rateLimits struct {
	limit rate.Limit // Static after construction.
	burst int        // Static after construction.

	mu    sync.Mutex
	users map[string]*rate.Limiter // Guarded by mu.
}

func newRateLimits(limit rate.Limit, burst int) *rateLimits {
	return &rateLimits{limit: limit, burst: burst, users: make(map[string]*rate.Limiter)}
}

// allow takes one upload from user's bucket at now; false if it is empty.
// A negative limit allows everything.
func (r *rateLimits) allow(user string, now time.Time) bool {
	if r.limit < 0 {
		return true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	l, ok := r.users[user]
	if !ok {
		if len(r.users) >= maxLimiters {
			r.dropIdle(now)
		}
		l = rate.NewLimiter(r.limit, r.burst)
		r.users[user] = l
	}
	return l.AllowN(now, 1)
}

// dropIdle removes the limiters whose bucket is full again, and all of
// them if none is: a full map of busy users is a flood, and forgetting
// costs at most one burst each. Called with mu held.
func (r *rateLimits) dropIdle(now time.Time) {
	for u, l := range r.users {
		if l.TokensAt(now) >= float64(r.burst) {
			delete(r.users, u)
		}
	}
	if len(r.users) >= maxLimiters {
		clear(r.users)
	}
}

// usage returns how many bytes of files user has stored: a listing of the
// user's data prefix, one page of keys per thousand files. Writes still in
// progress are not counted.
func (s *Service) usage(ctx context.Context, user string) (int64, error) {
	var total int64
	prefix := prefixData + hashKey(user) + "/"
	err := s.store.List(ctx, prefix, func(key string, size int64) error {
		if ValidID(strings.TrimPrefix(key, prefix)) {
			total += size
		}
		return nil
	})
	return total, err
}
