package httpx

import (
	"strings"
	"sync"
	"time"

	"github.com/chatd/chatd/core/auth"
)

// Bounds of the credential cache.
const (
	// maxCachedAge bounds how long a proven credential is taken on trust.
	// A credential is never taken past its own expiry either way (a JWT's
	// exp, a ticket's, the identity's), so this only bounds how long the
	// cache holds credentials that are no longer used.
	maxCachedAge = time.Minute
	// maxCachedIDs bounds the entries: about 1 KiB each with the key, so
	// 32 MiB at most.
	maxCachedIDs = 1 << 15
	// maxCachedKey is the longest credential cached; a longer one is
	// verified every time.
	maxCachedKey = 4 << 10
)

// idCache remembers the identities credentials proved, so that a client
// that sends the same one on every request has it verified once: a JWT
// verification costs tens of microseconds and dozens of allocations, a
// ticket's an HMAC and a JSON decode, more than the rest of a poll on a
// kept session (at 5000 poll clients in a busy room, redeeming tickets
// was 11% of the node's CPU).
//
// It is exact: whether a credential verifies depends on it and on the
// time only (exp and nbf for a JWT, the expiry for a ticket), and one
// that succeeded goes on succeeding until it expires. The Verifier's
// leeway lets a JWT succeed a little past exp; the cache never takes one
// past exp, so from then on every request verifies again. Failures are
// not cached. A key rotation takes effect for cached tokens within
// maxCachedAge.
type idCache struct {
	mu    sync.Mutex
	ids   map[cacheKey]cachedID // guarded by mu.
	swept time.Time             // when expired entries were last dropped; guarded by mu.
}

type cacheKey struct {
	kind   Credential
	secret string
}

// cachedID is an identity a credential proved, taken on trust until until.
type cachedID struct {
	id    auth.Identity
	until time.Time
}

// get returns the identity secret proved as a credential of kind, if it
// did recently and has not expired.
func (c *idCache) get(kind Credential, secret string, now time.Time) (auth.Identity, bool) {
	c.mu.Lock()
	e, ok := c.ids[cacheKey{kind, secret}]
	c.mu.Unlock()
	if !ok || !now.Before(e.until) {
		return auth.Identity{}, false
	}
	return e.id, true
}

// put remembers that secret proved id, until expires (zero: no expiry of
// its own) or maxCachedAge from now, whichever is sooner. A full cache
// first drops what has expired, then, if that is not enough, half of the
// rest.
func (c *idCache) put(kind Credential, secret string, id auth.Identity, expires, now time.Time) {
	until := now.Add(maxCachedAge)
	if !expires.IsZero() && expires.Before(until) {
		until = expires
	}
	if !now.Before(until) || len(secret) > maxCachedKey {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ids == nil {
		c.ids = make(map[cacheKey]cachedID)
	}
	// Expired entries go once per maxCachedAge (a pass over at most
	// maxCachedIDs entries), or as soon as the cache is full.
	if len(c.ids) >= maxCachedIDs || now.Sub(c.swept) >= maxCachedAge {
		c.swept = now
		for k, v := range c.ids {
			if !now.Before(v.until) {
				delete(c.ids, k)
			}
		}
	}
	if len(c.ids) >= maxCachedIDs {
		for k := range c.ids {
			if len(c.ids) < maxCachedIDs/2 {
				break
			}
			delete(c.ids, k)
		}
	}
	// A copy: the secret is a slice of the request's URL or header, which
	// the cache would otherwise keep alive.
	c.ids[cacheKey{kind, strings.Clone(secret)}] = cachedID{id: id, until: until}
}

// len returns the number of cached credentials.
func (c *idCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.ids)
}
