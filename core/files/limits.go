package files

import (
	"context"
	"strings"
	"sync"
	"time"

	"gocloud.dev/gcerrors"
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
// progress are not counted (see flights). A listing that meets a key gone
// while it listed (a file store lists a temporary file that another of
// the user's uploads renames meanwhile) is taken again, up to three times:
// one user's parallel uploads otherwise failed each other with an
// internal error.
func (s *Service) usage(ctx context.Context, user string) (int64, error) {
	prefix := prefixData + hashKey(user) + "/"
	for attempt := 1; ; attempt++ {
		var total int64
		err := s.store.List(ctx, prefix, func(key string, size int64) error {
			if ValidID(strings.TrimPrefix(key, prefix)) {
				total += size
			}
			return nil
		})
		if err == nil || attempt == 3 || gcerrors.Code(err) != gcerrors.NotFound {
			return total, err
		}
	}
}

// flights is what each user's uploads in progress on this node may still
// take of their quota: each reserves, before it reads a byte, the most it
// may store (its size cap, what is left of the quota, or its request's
// length if smaller), and gives it back when it ends. Without it, ten
// parallel uploads each saw the quota as the stored files left it, and
// together stored ten times what was left. Uploads on other nodes of a
// cluster are not seen. Safe for concurrent use.
type flights struct {
	mu    sync.Mutex
	users map[string]*flight // Guarded by mu.
}

// flight is one user's uploads in progress.
type flight struct {
	// mu is held from a listing to its reservation, and around a data
	// file's commit or removal: one at a time.
	mu       sync.Mutex
	reserved int64 // Guarded by flights.mu.
	uploads  int   // Guarded by flights.mu: the entry goes with the last
}

// join returns user's flight, counted as one more upload.
func (f *flights) join(user string) *flight {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.users == nil {
		f.users = make(map[string]*flight)
	}
	fl := f.users[user]
	if fl == nil {
		fl = &flight{}
		f.users[user] = fl
	}
	fl.uploads++
	return fl
}

// leave gives back what an upload of user reserved (n) and counts it out.
func (f *flights) leave(user string, fl *flight, n int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fl.reserved -= n
	if fl.uploads--; fl.uploads == 0 {
		delete(f.users, user)
	}
}

// reserved returns what fl's uploads have reserved.
func (f *flights) reserved(fl *flight) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return fl.reserved
}

// settle gives back what an upload reserved (*n), its data now stored,
// and zeroes *n.
func (f *flights) settle(fl *flight, n *int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fl.reserved -= *n
	*n = 0
}

// reserve adds n to what fl's uploads have reserved.
func (f *flights) reserve(fl *flight, n int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fl.reserved += n
}
