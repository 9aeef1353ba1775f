package httpx

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/core/protocol"
)

// Identify takes the bearer header only; IdentifyStream also takes
// ?ticket= and ?token=; Require records which credential proved the
// identity.
func TestIdentifyWhereCredentialsTravel(t *testing.T) {
	v, err := auth.NewVerifier(auth.Config{}) // dev mode: IssueDev signs
	if err != nil {
		t.Fatal(err)
	}
	tok, err := v.IssueDev("alice", false, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tickets := auth.NewTickets(nil, time.Minute, nil)
	ticket, err := tickets.Issue(auth.Identity{User: "alice", Name: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	a := &Authenticator{Verifier: v, Tickets: tickets}
	req := func(query, bearer string) *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/x?"+query, nil)
		if bearer != "" {
			r.Header.Set("Authorization", "Bearer "+bearer)
		}
		return r
	}
	for _, tc := range []struct {
		what          string
		r             *http.Request
		rest, stream  protocol.Code // "" for accepted
		cred          Credential    // what Require records
		streamIsAlice bool
	}{
		{"bearer", req("", tok), "", "", CredBearer, true},
		{"?token=", req("token="+url.QueryEscape(tok), ""), protocol.CodeUnauthorized, "", CredNone, true},
		{"?ticket=", req("ticket="+url.QueryEscape(ticket), ""), protocol.CodeUnauthorized, "", CredNone, true},
		{"ticket as bearer", req("", ticket), protocol.CodeUnauthorized, protocol.CodeUnauthorized, CredNone, false},
		{"nothing", req("", ""), protocol.CodeUnauthorized, protocol.CodeUnauthorized, CredNone, false},
		{"bearer and ?ticket=", req("ticket="+url.QueryEscape(ticket), tok), "", "", CredBearer, true},
	} {
		_, err := a.Identify(tc.r)
		checkCode(t, tc.what+": Identify", err, tc.rest)
		id, err := a.IdentifyStream(tc.r)
		checkCode(t, tc.what+": IdentifyStream", err, tc.stream)
		if tc.streamIsAlice && id.User != "alice" {
			t.Fatalf("%s: IdentifyStream gave %+v", tc.what, id)
		}
		var cred Credential
		var user string
		rec := httptest.NewRecorder()
		a.Require(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
			cred, user = CredentialFrom(r.Context()), IdentityFrom(r.Context()).User
		})).ServeHTTP(rec, tc.r)
		if cred != tc.cred || (cred == CredBearer) != (user == "alice") {
			t.Fatalf("%s: Require recorded %v for %q, want %v", tc.what, cred, user, tc.cred)
		}
		if tc.cred == CredNone && rec.Code != http.StatusUnauthorized {
			t.Fatalf("%s: Require answered %d", tc.what, rec.Code)
		}
	}
}

// checkCode fails unless err is nil (code "") or a wire error with code.
func checkCode(t *testing.T, what string, err error, code protocol.Code) {
	t.Helper()
	if code == "" {
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return
	}
	wantCode(t, what, err, code)
}

// TestTicketStreamEndsSpread: a stream opened with a ticket ends within
// the last quarter of what is left of the ticket's life, at a point that
// differs from stream to stream, so that streams opened together do not
// all end, and reconnect, together; a poll, which proves its ticket at
// each request, keeps the ticket's own expiry, and a ticket capped by its
// token ends with the token.
func TestTicketStreamEndsSpread(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	clock := func() time.Time { return now }
	tickets := auth.NewTickets(nil, time.Minute, clock)
	a := &Authenticator{Tickets: tickets, Now: clock}
	ticket, err := tickets.Issue(auth.Identity{User: "alice", Name: "alice", Expires: now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	// Opened 20 s into the ticket's minute: 40 s left, the last 10 s of
	// which the stream may end in.
	now = now.Add(20 * time.Second)
	until := now.Add(40 * time.Second)
	r := httptest.NewRequest(http.MethodGet, "/v1/sse?ticket="+url.QueryEscape(ticket), nil)
	ends := map[time.Time]bool{}
	for range 50 {
		id, err := a.IdentifyStream(r)
		if err != nil {
			t.Fatal(err)
		}
		if !id.Ticket || !id.TicketBound || id.Expires.Before(until.Add(-10*time.Second)) || id.Expires.After(until) {
			t.Fatalf("a stream opened with %v of the ticket left: %+v, want it to end within %v of %v", until.Sub(now), id, 10*time.Second, until)
		}
		ends[id.Expires] = true
	}
	if len(ends) < 10 {
		t.Fatalf("50 streams opened together end at %d points: %v", len(ends), ends)
	}
	p, err := a.ProveRepeated(r)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Until().Equal(until) {
		t.Fatalf("a poll's credential ends at %v, want the ticket's expiry %v", p.Until(), until)
	}
	// A ticket its token caps ends with the token, to the millisecond.
	capped, err := tickets.Issue(auth.Identity{User: "alice", Name: "alice", Expires: now.Add(5 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	id, err := a.IdentifyStream(httptest.NewRequest(http.MethodGet, "/v1/sse?ticket="+url.QueryEscape(capped), nil))
	if err != nil || id.TicketBound || !id.Expires.Equal(now.Add(5*time.Second)) {
		t.Fatalf("a ticket capped by its token: %+v, %v", id, err)
	}
}
