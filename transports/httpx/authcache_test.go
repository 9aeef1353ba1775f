package httpx

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/core/protocol"
)

// A credential is verified once and then taken on trust, but never past
// its own expiry, on the clock the Verifier uses: a JWT's exp, and a
// ticket's expiry; a credential that fails is not remembered.
func TestCredentialTrustEndsAtExpiry(t *testing.T) {
	t0 := time.Now().Truncate(time.Second)
	var at atomic.Int64
	at.Store(t0.UnixNano())
	clock := func() time.Time { return time.Unix(0, at.Load()) }
	v, err := auth.NewVerifier(auth.Config{Leeway: -1, Now: clock}) // dev mode: IssueDev signs
	if err != nil {
		t.Fatal(err)
	}
	tickets := auth.NewTickets(nil, time.Minute, clock)
	a := &Authenticator{Verifier: v, Tickets: tickets, Now: clock}
	tok, err := v.IssueDev("alice", false, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	bearer := func(tok string) error {
		r := httptest.NewRequest("GET", "/v1/poll", nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		_, err := a.IdentifyRepeated(r)
		return err
	}
	byTicket := func(ticket string) error {
		_, err := a.IdentifyRepeated(httptest.NewRequest("GET", "/v1/poll?ticket="+ticket, nil))
		return err
	}
	if err := bearer(tok); err != nil {
		t.Fatal(err)
	}
	if n := a.cache.len(); n != 1 {
		t.Fatalf("%d credentials cached after a valid token, want 1", n)
	}
	at.Store(t0.Add(time.Hour - time.Second).UnixNano())
	if err := bearer(tok); err != nil {
		t.Fatalf("a second before exp: %v", err)
	}
	at.Store(t0.Add(time.Hour + time.Second).UnixNano())
	if err := bearer(tok); err == nil {
		t.Fatal("a token past its exp was taken")
	}

	at.Store(t0.UnixNano())
	// The MAC's first character changed: all six of its bits are the
	// MAC's (the last two characters may differ only in padding bits).
	sig := strings.LastIndexByte(tok, '.') + 1
	flipped := "A"
	if tok[sig] == 'A' {
		flipped = "B"
	}
	forged := tok[:sig] + flipped + tok[sig+1:]
	for range 2 {
		if err := bearer(forged); err == nil {
			t.Fatal("a forged token was taken")
		}
	}
	ticket, err := tickets.Issue(auth.Identity{User: "alice", Name: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if err := byTicket(ticket); err != nil {
		t.Fatal(err)
	}
	if n := a.cache.len(); n != 2 {
		t.Fatalf("%d credentials cached, want the token's and the ticket's, not the forged one's", n)
	}
	// A WebSocket or SSE connection's credential is not cached.
	other, err := tickets.Issue(auth.Identity{User: "bob", Name: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.IdentifyStream(httptest.NewRequest("GET", "/v1/ws?ticket="+other, nil)); err != nil {
		t.Fatal(err)
	}
	if n := a.cache.len(); n != 2 {
		t.Fatalf("%d credentials cached after a stream's ticket, want still 2", n)
	}
	at.Store(t0.Add(time.Minute + time.Second).UnixNano()) // past the ticket's TTL, within maxCachedAge's reach
	if err := byTicket(ticket); err == nil {
		t.Fatal("a ticket past its expiry was taken")
	} else if code, _ := protocol.CodeOf(err); code != protocol.CodeTokenExpired {
		t.Fatalf("an expired ticket: %v, want token_expired", err)
	}
}

// The cache stays within its bound, dropping what has expired first.
func TestCredentialCacheBound(t *testing.T) {
	now := time.Now()
	var c idCache
	for i := range maxCachedIDs {
		expires := now.Add(time.Minute)
		if i%2 == 0 {
			expires = now.Add(time.Millisecond) // expired by the next put's clock
		}
		c.put(CredBearer, fmt.Sprint(i), auth.Identity{User: "u"}, expires, now)
	}
	later := now.Add(time.Second)
	c.put(CredBearer, "new", auth.Identity{User: "n"}, time.Time{}, later)
	if n := c.len(); n > maxCachedIDs/2+1 || n < maxCachedIDs/4 {
		t.Fatalf("%d entries after a put into a full cache, want the unexpired half", n)
	}
	for k, v := range c.ids {
		if !later.Before(v.until) {
			t.Fatalf("entry %q survived expired", k.secret)
		}
	}
	if e, ok := c.get(CredBearer, "new", later); !ok || e.id.User != "n" {
		t.Fatal("the new entry is missing")
	}
	if _, ok := c.get(CredTicket, "new", later); ok {
		t.Fatal("a ticket matched a bearer token's entry")
	}
}

// Expired credentials leave the cache within about maxCachedAge even when
// it never fills.
func TestCredentialCacheSweeps(t *testing.T) {
	now := time.Now()
	var c idCache
	c.put(CredBearer, "a", auth.Identity{User: "a"}, now.Add(time.Second), now)
	c.put(CredBearer, "b", auth.Identity{User: "b"}, time.Time{}, now)
	if n := c.len(); n != 2 {
		t.Fatalf("%d entries, want 2", n)
	}
	later := now.Add(maxCachedAge + time.Second) // both expired
	c.put(CredBearer, "c", auth.Identity{User: "c"}, time.Time{}, later)
	if n := c.len(); n != 1 {
		t.Fatalf("%d entries a cache age later, want only the new one", n)
	}
}

// A lane's connection proves the credential its last request proved
// with a comparison (laneCred), for exactly as long as the cache would:
// not past the credential's expiry, not for another credential, nor
// for another Authenticator.
func TestLaneConnKeepsItsCredential(t *testing.T) {
	a, v, setClock := clockedAuth(t)
	tok, err := v.IssueDev("alice", false, 30*time.Second) // expires before maxCachedAge
	if err != nil {
		t.Fatal(err)
	}
	lc := &laneConn{}
	poll := func(a *Authenticator, q string) (auth.Identity, error) {
		r := httptest.NewRequest("GET", "/v1/poll?"+q, nil)
		r = r.WithContext(context.WithValue(r.Context(), laneKey{}, lc))
		return a.IdentifyRepeated(r)
	}
	if id, err := poll(a, "token="+tok); err != nil || id.User != "alice" {
		t.Fatalf("first poll: %v %v", id, err)
	}
	if lc.cred.secret != tok || lc.cred.by != a {
		t.Fatal("the connection did not keep the credential it proved")
	}
	// Taken from the connection: the cache is gone.
	a.cache = idCache{}
	if id, err := poll(a, "token="+tok); err != nil || id.User != "alice" {
		t.Fatalf("second poll: %v %v", id, err)
	}
	if n := a.cache.len(); n != 0 {
		t.Fatalf("%d cached: the second poll went to the cache", n)
	}
	// Another credential on the same connection is proved on its own.
	sig := strings.LastIndexByte(tok, '.') + 1
	flipped := "A"
	if tok[sig] == 'A' {
		flipped = "B"
	}
	if _, err := poll(a, "token="+tok[:sig]+flipped+tok[sig+1:]); err == nil {
		t.Fatal("a forged token was taken on a connection that proved the real one")
	}
	if _, err := poll(a, "token="+tok); err != nil {
		t.Fatal(err)
	}
	// Another Authenticator (another verifier) does not take it.
	w, err := auth.NewVerifier(auth.Config{HMACSecret: []byte("another secret, long enough for HS256"), Now: a.Now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := poll(&Authenticator{Verifier: w, Now: a.Now}, "token="+tok); err == nil {
		t.Fatal("an Authenticator took a credential another one proved")
	}
	// Past the token's exp, neither the connection nor the cache takes it.
	if _, err := poll(a, "token="+tok); err != nil {
		t.Fatal(err)
	}
	setClock(31 * time.Second)
	if _, err := poll(a, "token="+tok); err == nil {
		t.Fatal("a token past its exp was taken from the connection")
	}
}

// clockedAuth returns an Authenticator on a dev-mode Verifier (IssueDev
// signs), both on a clock that stands still at a whole second, and a
// setter that puts the clock d after it.
func clockedAuth(t *testing.T) (*Authenticator, *auth.Verifier, func(d time.Duration)) {
	t.Helper()
	t0 := time.Now().Truncate(time.Second)
	var at atomic.Int64
	at.Store(t0.UnixNano())
	clock := func() time.Time { return time.Unix(0, at.Load()) }
	v, err := auth.NewVerifier(auth.Config{Leeway: -1, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	return &Authenticator{Verifier: v, Now: clock}, v, func(d time.Duration) { at.Store(t0.Add(d).UnixNano()) }
}
