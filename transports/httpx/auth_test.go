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
