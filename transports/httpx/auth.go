package httpx

import (
	"context"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"

	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/core/protocol"
)

// Credential says how a request proved its identity. Only a bearer JWT is
// a full credential: URL forms exist because browsers cannot set headers
// on WebSocket or EventSource, and a URL leaks (proxy logs, history), so
// they open the streaming endpoints and nothing else.
type Credential int

const (
	// CredNone: no identity was proven.
	CredNone Credential = iota
	// CredBearer: a JWT in the Authorization header.
	CredBearer
	// CredTicket: a ticket in ?ticket=.
	CredTicket
	// CredToken: a JWT in ?token=.
	CredToken
)

func (c Credential) String() string {
	switch c {
	case CredBearer:
		return "bearer"
	case CredTicket:
		return "ticket"
	case CredToken:
		return "token"
	}
	return "none"
}

// Authenticator finds the identity behind a request. Its fields are
// static after construction; it is safe for concurrent use, and must not
// be copied once used.
//
// A credential that proved an identity on a REST call or a poll is
// remembered (authcache.go), so a client that sends the same token or
// ticket on every request (a poll client, several times a second under a
// busy room; a REST client on every send) has it verified once.
type Authenticator struct {
	Verifier *auth.Verifier
	Tickets  *auth.Tickets
	Now      func() time.Time // the cache's clock; nil: time.Now. Give the Verifier's.

	cache idCache
}

// Identify authenticates a REST request: the Authorization bearer header
// only. A request that carries its credential only in the URL (?ticket= or
// ?token=) is unauthorized, with a message saying to use the header; a
// ticket or token in the URL of a REST call is as good as leaked.
func (a *Authenticator) Identify(r *http.Request) (auth.Identity, error) {
	id, _, _, _, err := a.authenticate(r, false, true)
	return id, err
}

// IdentifyStream authenticates a request that opens a stream (/v1/ws,
// /v1/sse): the Authorization bearer header, else the ticket query
// parameter, else the token query parameter. Browsers cannot set headers
// on WebSocket or EventSource, hence the query forms. An identity a
// ticket proves has Ticket set and expires with the ticket.
func (a *Authenticator) IdentifyStream(r *http.Request) (auth.Identity, error) {
	id, _, _, _, err := a.authenticate(r, true, false)
	return id, err
}

// IdentifyRepeated is IdentifyStream for a client that sends the same
// credential request after request (a poll client): the identity it
// proved is remembered until the credential expires. A WebSocket or SSE
// connection proves its credential once, and would only fill the cache.
func (a *Authenticator) IdentifyRepeated(r *http.Request) (auth.Identity, error) {
	id, _, _, _, err := a.authenticate(r, true, true)
	return id, err
}

// Proof is what a request's credential proved (ProveRepeated): the
// identity, and until when the credential is taken to prove it.
type Proof struct {
	ID    auth.Identity
	until time.Time // zero: not taken on trust (Reuse refuses it)
	ends  time.Time // when the credential itself expires; zero: never
}

// Until is when p's credential expires (a ticket's expiry or a token's),
// or zero if never. A poll held past it would answer on a credential
// that no longer proves anything.
func (p Proof) Until() time.Time { return p.ends }

// ProveRepeated is IdentifyRepeated, with the identity's Proof. A
// handler that keeps the proof, along with the exact credential it came
// with, can take the identity again for a request that brings that very
// credential (Reuse) without reading it.
func (a *Authenticator) ProveRepeated(r *http.Request) (Proof, error) {
	id, until, ends, _, err := a.authenticate(r, true, true)
	return Proof{ID: id, until: until, ends: ends}, err
}

// Reuse returns p's identity for r, a request that brings the very
// credential that proved p (the caller has compared them), if the
// credential is still taken to prove it (as long as the credential cache
// would take it); it reports false otherwise, and r's credential must be
// proved again (ProveRepeated). Like the Identify methods it tells Report
// of the user.
func (a *Authenticator) Reuse(r *http.Request, p Proof) (auth.Identity, bool) {
	if !a.now().Before(p.until) {
		return auth.Identity{}, false
	}
	reportUser(r, p.ID.User)
	return p.ID, true
}

// authenticate is Identify (inURL false) and IdentifyStream (inURL true),
// through the cache or not, with the kind of credential that proved the
// identity. The user it proves is
// the one Report tells of the request's errors.
// With cached, it also returns until when the credential is taken on
// trust (zero: it is not); and it returns when the credential expires
// (zero: never).
func (a *Authenticator) authenticate(r *http.Request, inURL, cached bool) (auth.Identity, time.Time, time.Time, Credential, error) {
	// A lane's connection keeps the credential it last proved through
	// the cache (laneCred).
	var lc *laneConn
	if cached {
		lc, _ = r.Context().Value(laneKey{}).(*laneConn)
	}
	id, until, ends, cred, err := a.credential(r, lc, inURL, cached)
	if err == nil {
		reportUser(r, id.User)
	}
	return id, until, ends, cred, err
}

// credParams are the query parameters that may carry a credential.
var credParams = []string{"ticket", "token"}

// credential checks the request's credential, as authenticate says.
func (a *Authenticator) credential(r *http.Request, lc *laneConn, inURL, cached bool) (auth.Identity, time.Time, time.Time, Credential, error) {
	if h := r.Header.Get("Authorization"); h != "" {
		tok, ok := strings.CutPrefix(h, "Bearer ")
		if !ok {
			return auth.Identity{}, time.Time{}, time.Time{}, CredNone, protocol.Errorf(protocol.CodeUnauthorized, "authorization header must be Bearer")
		}
		return a.prove(lc, CredBearer, strings.TrimSpace(tok), cached)
	}
	var cred [2]string
	queryParams(r.URL.RawQuery, credParams, cred[:])
	ticket, token := cred[0], cred[1]
	switch {
	case !inURL && (ticket != "" || token != ""):
		return auth.Identity{}, time.Time{}, time.Time{}, CredNone, errURLCredential
	case ticket != "":
		return a.prove(lc, CredTicket, ticket, cached)
	case token != "":
		return a.prove(lc, CredToken, token, cached)
	case inURL:
		return auth.Identity{}, time.Time{}, time.Time{}, CredNone, protocol.Errorf(protocol.CodeUnauthorized, "no credentials: send a bearer token or a ticket")
	}
	return auth.Identity{}, time.Time{}, time.Time{}, CredNone, protocol.Errorf(protocol.CodeUnauthorized, "no credentials: send Authorization: Bearer <token>")
}

// prove returns the identity secret proves as a credential of kind; with
// cached, from the cache when it proved it recently, and into it, and
// first from lc (nil: not a lane's request) when it proved it last.
// With cached, it returns until when the cache takes secret on trust
// (zero: it does not).
func (a *Authenticator) prove(lc *laneConn, kind Credential, secret string, cached bool) (auth.Identity, time.Time, time.Time, Credential, error) {
	now := a.now()
	if cached {
		if lc != nil {
			if e, ok := lc.provedOn(a, kind, secret, now); ok {
				return e.id, e.until, e.ends, kind, nil
			}
		}
		if e, ok := a.cache.get(kind, secret, now); ok {
			if lc != nil {
				lc.proved(a, kind, secret, e)
			}
			return e.id, e.until, e.ends, kind, nil
		}
	}
	var (
		id    auth.Identity
		until time.Time // when the credential itself stops proving id
		err   error
	)
	if kind == CredTicket {
		id, until, err = a.Tickets.RedeemUntil(secret)
	} else {
		id, err = a.Verifier.Verify(secret)
		until = id.Expires
	}
	if err != nil {
		return auth.Identity{}, time.Time{}, time.Time{}, kind, err
	}
	if kind == CredTicket {
		// A ticket may have leaked: what it proves writes nothing and
		// remembers no join (auth.Identity.Ticket).
		id.Ticket = true
		if !id.Expires.IsZero() && !id.Expires.After(until) {
			until = id.Expires // a ticket outlives neither itself nor its token
		} else if !cached {
			// A stream (IdentifyStream) lives as long as its ticket, not
			// the token the ticket came from, unless the client proves
			// the token in-band; it ends within the last quarter of what
			// is left of the ticket's life (spreadEnd).
			id.Expires, id.TicketBound = spreadEnd(now, until), true
		}
	}
	var trusted time.Time
	if cached {
		if e, ok := a.cache.put(kind, secret, id, until, now); ok {
			trusted = e.until
			if lc != nil {
				lc.proved(a, kind, secret, e)
			}
		}
	}
	return id, trusted, until, kind, nil
}

// spreadEnd returns when a stream opened at now with a ticket good until
// until ends: at a point of the last quarter of the ticket's remaining
// life, chosen at random. Streams opened together end apart, and their
// clients, which come back at once with a new ticket, do not all come
// back together a ticket's life later, again and again: 10,000 SSE
// streams opened within seconds (a restart, a level change) all ended
// within 7 s of each other a minute later, and every minute after, each
// time holding the node at its core for those 7 s (about 570 µs of the
// node a reconnect: its ticket, its stream, its resume and its
// presence). Spread, the first wave takes a quarter of the life (15 s
// of 60), and each later one spreads wider.
func spreadEnd(now, until time.Time) time.Time {
	left := until.Sub(now)
	if left <= 0 {
		return until
	}
	return until.Add(-rand.N(left/4 + 1))
}

func (a *Authenticator) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// errURLCredential answers a REST call that authenticates in its URL.
var errURLCredential = protocol.Errorf(protocol.CodeUnauthorized,
	"?ticket= and ?token= are accepted on /v1/ws, /v1/sse and /v1/poll only: send Authorization: Bearer <token>")

// principal is what Require puts in the request context.
type principal struct {
	id   auth.Identity
	cred Credential
}

type principalKey struct{}

// Require is middleware for REST routes: it authenticates as Identify does
// (bearer header only), rejects the request if that fails, and otherwise
// puts the identity and its Credential in the request context.
func (a *Authenticator) Require(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _, _, cred, err := a.authenticate(r, false, true)
		if err != nil {
			WriteError(w, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, principal{id: id, cred: cred})))
	})
}

// IdentityFrom returns the identity Require stored, or the zero Identity.
func IdentityFrom(ctx context.Context) auth.Identity {
	p, _ := ctx.Value(principalKey{}).(principal)
	return p.id
}

// CredentialFrom returns how the identity Require stored was proven, or
// CredNone. Handlers that must not be reached with a URL credential (a
// ticket never buys a ticket; the admin API needs a bearer JWT) check it
// on top of Require, so that a future route change cannot open them.
func CredentialFrom(ctx context.Context) Credential {
	p, _ := ctx.Value(principalKey{}).(principal)
	return p.cred
}
