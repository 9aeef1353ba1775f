package poll

import (
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/transports/httpx"
)

// Bounds of the identity cache.
const (
	// maxCachedAge bounds how long a verified token is taken on trust:
	// a token is never accepted past its exp either way, so this only
	// bounds the cache's memory for tokens that are no longer used.
	maxCachedAge = time.Minute
	// maxCachedIDs bounds the cache's entries (a few hundred bytes each).
	maxCachedIDs = 1 << 15
)

// idCache remembers the identities bearer tokens proved, so that a
// client's polls, each of which carries its token (the browser client
// sends the Authorization header on every poll), verify it once, not
// once per poll: a JWT verification costs tens of microseconds and
// dozens of allocations, more than the rest of a poll on a kept session.
//
// It is exact. A verification depends on the token and the time only,
// through exp and nbf, and one that succeeded goes on succeeding until
// exp (the Verifier's leeway lets it succeed a little longer; past exp
// every poll verifies again). Failures are not cached, and neither are
// tickets: a ticket's own expiry is not in the identity it carries.
type idCache struct {
	auth *httpx.Authenticator // Static after construction.
	now  func() time.Time     // Static after construction.

	mu  sync.Mutex
	ids map[string]cachedID // by Authorization header; guarded by mu.
}

// cachedID is an identity proved by a token, taken on trust until until.
type cachedID struct {
	id    auth.Identity
	until time.Time
}

// identify returns the identity behind r, as the Authenticator's
// IdentifyStream does.
func (c *idCache) identify(r *http.Request) (auth.Identity, error) {
	key := r.Header.Get("Authorization")
	if !strings.HasPrefix(key, "Bearer ") {
		return c.auth.IdentifyStream(r)
	}
	now := c.now()
	c.mu.Lock()
	e, ok := c.ids[key]
	c.mu.Unlock()
	if ok && now.Before(e.until) {
		httpx.ReportUser(r, e.id.User)
		return e.id, nil
	}
	id, err := c.auth.IdentifyStream(r)
	if err != nil {
		return id, err
	}
	until := now.Add(maxCachedAge)
	if id.Expires.Before(until) {
		until = id.Expires
	}
	if now.Before(until) {
		c.put(key, cachedID{id: id, until: until}, now)
	}
	return id, nil
}

// put caches e under key. A full cache first drops what has expired,
// then, if that is not enough, half of the rest.
func (c *idCache) put(key string, e cachedID, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ids == nil {
		c.ids = make(map[string]cachedID)
	}
	if len(c.ids) >= maxCachedIDs {
		for k, v := range c.ids {
			if !now.Before(v.until) {
				delete(c.ids, k)
			}
		}
		for k := range c.ids {
			if len(c.ids) < maxCachedIDs/2 {
				break
			}
			delete(c.ids, k)
		}
	}
	c.ids[key] = e
}
