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
	until time.Time // taken on trust until then
	ends  time.Time // when the credential itself expires; zero: never
}

// get returns the identity secret proved as a credential of kind, if it
// did recently and has not expired.
func (c *idCache) get(kind Credential, secret string, now time.Time) (cachedID, bool) {
	c.mu.Lock()
	e, ok := c.ids[cacheKey{kind, secret}]
	c.mu.Unlock()
	if !ok || !now.Before(e.until) {
		return cachedID{}, false
	}
	return e, true
}

// put remembers that secret proved id, until expires (zero: no expiry of
// its own) or maxCachedAge from now, whichever is sooner. A full cache
// first drops what has expired, then, if that is not enough, half of the
// rest. It returns what it remembered, and false if it did not (the
// credential expires now, or is too long).
func (c *idCache) put(kind Credential, secret string, id auth.Identity, expires, now time.Time) (cachedID, bool) {
	until := now.Add(maxCachedAge)
	if !expires.IsZero() && expires.Before(until) {
		until = expires
	}
	if !now.Before(until) || len(secret) > maxCachedKey {
		return cachedID{}, false
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
	e := cachedID{id: id, until: until, ends: expires}
	c.ids[cacheKey{kind, strings.Clone(secret)}] = e
	return e, true
}

// laneCred is the credential a lane's connection last proved through
// the cache, kept on the connection (laneConn.cred) so that its next
// requests, which bring the same one, are proved with a comparison: the
// cache's lookup (a lock, and a hash of the whole token) was about a
// thirtieth of a poll's CPU on a lane. It is taken on trust exactly as
// long as the cache's entry is (until).
type laneCred struct {
	by     *Authenticator // whose cache it came through
	kind   Credential
	secret string // a copy
	e      cachedID
}

// provedOn returns what lc's last credential proved, if it is secret, of
// kind, through a's cache, and still good at now.
func (lc *laneConn) provedOn(a *Authenticator, kind Credential, secret string, now time.Time) (cachedID, bool) {
	c := &lc.cred
	if c.by != a || c.kind != kind || c.secret != secret || !now.Before(c.e.until) {
		return cachedID{}, false
	}
	return c.e, true
}

// proved keeps e, what secret proved as a credential of kind through
// a's cache, on lc.
func (lc *laneConn) proved(a *Authenticator, kind Credential, secret string, e cachedID) {
	if lc.cred.secret != secret {
		secret = strings.Clone(secret) // not the request's head, which it would keep alive
	} else {
		secret = lc.cred.secret
	}
	lc.cred = laneCred{by: a, kind: kind, secret: secret, e: e}
}

// len returns the number of cached credentials.
func (c *idCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.ids)
}
