package auth

import (
	"errors"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/chatd/chatd/core/protocol"
)

// checkFuzzResult fails unless err is nil with a user, or a
// *protocol.Error with one of the codes in want.
func checkFuzzResult(t *testing.T, id Identity, err error, want ...protocol.Code) {
	t.Helper()
	if err == nil {
		if id.User == "" {
			t.Fatal("accepted with an empty user")
		}
		return
	}
	var pe *protocol.Error
	if !errors.As(err, &pe) {
		t.Fatalf("error %v (%T) is not a *protocol.Error", err, err)
	}
	for _, c := range want {
		if pe.Code == c {
			return
		}
	}
	t.Fatalf("unexpected code %s (%v)", pe.Code, err)
}

func FuzzRedeem(f *testing.F) {
	tk := NewTickets(ticketKey, time.Minute, fixedNow)
	for _, id := range []Identity{
		{User: "alice", Rooms: []string{"general"}, Expires: t0.Add(time.Hour)},
		{User: "bob", Admin: true},
	} {
		ticket, err := tk.Issue(id)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(ticket)
		f.Add(replaceAt(ticket, 3))
	}
	f.Add("")
	f.Add(".")
	f.Add("e30.AAAA")
	f.Fuzz(func(t *testing.T, ticket string) {
		id, err := tk.Redeem(ticket)
		checkFuzzResult(t, id, err, protocol.CodeUnauthorized, protocol.CodeTokenExpired)
	})
}

func FuzzVerify(f *testing.F) {
	v, err := NewVerifier(hsConfig())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sign(f, jwt.SigningMethodHS256, hsSecret, claimsFor("alice", jwt.MapClaims{"rooms": []string{"a*"}})))
	f.Add(sign(f, jwt.SigningMethodHS256, hsSecret, claimsFor("alice", jwt.MapClaims{"exp": 1})))
	f.Add(b64(`{"alg":"none"}`) + "." + b64(`{"sub":"a","exp":9999999999}`) + ".")
	f.Add(b64(`{"alg":"HS256"}`) + "." + b64(`{"sub":"a","exp":"x","rooms":"y"}`) + ".AAAA")
	f.Add("a.b.c")
	f.Add("")
	f.Fuzz(func(t *testing.T, token string) {
		id, err := v.Verify(token)
		checkFuzzResult(t, id, err, protocol.CodeUnauthorized, protocol.CodeTokenExpired)
	})
}
