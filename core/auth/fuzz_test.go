package auth

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/chatd/chatd/core/protocol"
)

// checkFuzzResult fails unless err is nil with a valid user id, or a
// *protocol.Error with one of the codes in want.
func checkFuzzResult(t *testing.T, id Identity, err error, want ...protocol.Code) {
	t.Helper()
	if err == nil {
		if e := protocol.ValidUser(id.User); e != nil {
			t.Fatalf("accepted user %+q: %v", id.User, e)
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

// FuzzVerifyClaims fuzzes the payload of a correctly signed token, which
// FuzzVerify's random strings almost never reach. Whatever is accepted has
// a valid sub, an exp within the leeway, and numbers for every date claim;
// its user is the one claim named exactly "sub", and it is an admin only
// by one claim named exactly "admin" that is true (claim names are
// compared exactly: "Admin" and "ſub" are other claims).
func FuzzVerifyClaims(f *testing.F) {
	v, err := NewVerifier(hsConfig())
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{
		`{"sub":"alice","exp":9999999999}`,
		`{"sub":"alice","exp":"9999999999"}`,
		`{"sub":"alice","EXP":"9999999999","exp":9999999999}`,
		`{"sub":"alice","exp":9999999999,"nbf":null,"iat":1.5}`,
		`{"sub":"alice\u0000","exp":9999999999}`,
		`{"sub":"\u202ealice","exp":9999999999,"rooms":["a*"],"admin":true}`,
		`{"sub":"alice","exp":1e400}`,
		`{"sub":"alice","exp":9999999999} trailing`,
		`{"sub":"bob","ſub":"alice","exp":9999999999}`,
		`{"sub":"bob","exp":9999999999,"Admin":true,"ROOMS":null,"rooms":["a"]}`,
		`{"sub":"bob","sub":"alice","exp":9999999999}`,
	} {
		f.Add([]byte(s))
	}
	head := b64(`{"alg":"HS256","typ":"JWT"}`) + "."
	f.Fuzz(func(t *testing.T, payload []byte) {
		unsigned := head + base64.RawURLEncoding.EncodeToString(payload)
		sig, err := jwt.SigningMethodHS256.Sign(unsigned, hsSecret)
		if err != nil {
			t.Fatal(err)
		}
		id, err := v.Verify(unsigned + "." + base64.RawURLEncoding.EncodeToString(sig))
		checkFuzzResult(t, id, err, protocol.CodeUnauthorized, protocol.CodeTokenExpired)
		if err != nil {
			return
		}
		if id.Expires.Before(t0.Add(-DefaultLeeway)) {
			t.Fatalf("accepted a token that expired at %v", id.Expires)
		}
		var raw map[string]json.RawMessage
		if err := json.NewDecoder(bytes.NewReader(payload)).Decode(&raw); err != nil {
			t.Fatalf("accepted a payload that is not a JSON object: %v", err)
		}
		var sub string
		if json.Unmarshal(raw["sub"], &sub) != nil || sub != id.User {
			t.Fatalf("accepted %s as user %q", payload, id.User)
		}
		if admin := string(raw["admin"]) == "true"; admin != id.Admin {
			t.Fatalf("accepted %s with admin %v", payload, id.Admin)
		}
		for k, val := range raw {
			if k != "exp" && k != "nbf" && k != "iat" {
				continue
			}
			var n float64
			if bytes.HasPrefix(val, []byte(`"`)) || string(val) == "null" || json.Unmarshal(val, &n) != nil {
				t.Fatalf("accepted %s = %s", k, val)
			}
		}
	})
}
