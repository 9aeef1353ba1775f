package auth

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/chatd/chatd/core/protocol"
)

// TestVerifyStrictClaims pins RFC 7519's types: NumericDate claims are JSON
// numbers, and sub is a printable user id.
func TestVerifyStrictClaims(t *testing.T) {
	v, err := NewVerifier(hsConfig())
	if err != nil {
		t.Fatal(err)
	}
	hs := func(sub string, extra jwt.MapClaims) string {
		return sign(t, jwt.SigningMethodHS256, hsSecret, claimsFor(sub, extra))
	}
	future := t0.Add(time.Hour).Unix()
	refused := map[string]string{
		"exp a string":          hs("alice", jwt.MapClaims{"exp": "9999999999"}),
		"exp a string, key Exp": hs("alice", jwt.MapClaims{"exp": nil, "Exp": "9999999999"}),
		"exp null":              hs("alice", jwt.MapClaims{"exp": json.RawMessage("null")}),
		"exp negative":          hs("alice", jwt.MapClaims{"exp": -1}),
		"exp past year 9999":    hs("alice", jwt.MapClaims{"exp": 1e19}),
		"nbf a string":          hs("alice", jwt.MapClaims{"nbf": "0"}),
		"nbf null":              hs("alice", jwt.MapClaims{"nbf": json.RawMessage("null")}),
		"iat a string":          hs("alice", jwt.MapClaims{"iat": "0"}),
		"iat an object":         hs("alice", jwt.MapClaims{"iat": map[string]int{"s": 1}}),
		"sub with NUL":          hs("alice\x00admin", nil),
		"sub with newline":      hs("alice\nadmin", nil),
		"sub with RLO":          hs("\u202ealice", nil),
		"sub with zero-width":   hs("ali\u200bce", nil),
		"sub with a space":      hs("alice smith", nil),
		"sub too long":          hs(strings.Repeat("a", protocol.MaxUserLen+1), nil),
		"bad sub and expired":   hs("\u202ealice", jwt.MapClaims{"exp": t0.Add(-time.Hour).Unix()}),
	}
	for name, token := range refused {
		t.Run(name, func(t *testing.T) {
			id, err := v.Verify(token)
			if err == nil {
				t.Fatalf("Verify accepted %+v", id)
			}
			if c := codeOf(t, err); c != protocol.CodeUnauthorized {
				t.Errorf("code %s, want unauthorized (%v)", c, err)
			}
		})
	}
	accepted := map[string]string{
		"plain":            hs("alice", nil),
		"nbf and iat":      hs("alice", jwt.MapClaims{"nbf": t0.Add(-time.Minute).Unix(), "iat": t0.Unix()}),
		"fractional dates": hs("alice", jwt.MapClaims{"exp": float64(future) + 0.5, "nbf": 1.5}),
		"unicode sub":      hs("zoë", nil),
		"longest sub":      hs(strings.Repeat("a", protocol.MaxUserLen), nil),
	}
	for name, token := range accepted {
		t.Run(name, func(t *testing.T) {
			id, err := v.Verify(token)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if protocol.ValidUser(id.User) != nil || id.Expires.Before(t0) {
				t.Errorf("identity %+v", id)
			}
		})
	}
}

// TestTicketsRefuseInvalidUsers checks both ends: Issue refuses an
// identity that no token could carry, and Redeem refuses a correctly
// signed ticket for one.
func TestTicketsRefuseInvalidUsers(t *testing.T) {
	tk := NewTickets(ticketKey, time.Minute, fixedNow)
	for _, user := range []string{"", "alice\x00", "alice\n", "\u202ealice", "a b", strings.Repeat("u", protocol.MaxUserLen+1)} {
		if ticket, err := tk.Issue(Identity{User: user}); err == nil || codeOf(t, err) != protocol.CodeUnauthorized {
			t.Errorf("Issue(%+q) = %q, %v; want unauthorized", user, ticket, err)
		}
		body, err := json.Marshal(ticketPayload{User: user, Until: t0.Add(time.Minute).UnixMilli()})
		if err != nil {
			t.Fatal(err)
		}
		payload := base64.RawURLEncoding.EncodeToString(body)
		forged := payload + "." + base64.RawURLEncoding.EncodeToString(tk.mac(payload))
		if id, err := tk.Redeem(forged); err == nil || codeOf(t, err) != protocol.CodeUnauthorized {
			t.Errorf("Redeem of a signed ticket for %+q = %+v, %v; want unauthorized", user, id, err)
		}
	}
}
