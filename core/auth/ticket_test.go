package auth

import (
	"encoding/base64"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/chatd/chatd/core/protocol"
)

// clock is a settable test clock. Tests that use it do not run in
// parallel.
type clock struct{ t time.Time }

func (c *clock) Now() time.Time { return c.t }

var ticketKey = []byte("ticket key for tests, 32 bytes!!")

func TestTicketRoundTrip(t *testing.T) {
	tk := NewTickets(ticketKey, 0, fixedNow)
	if tk.TTL() != DefaultTicketTTL {
		t.Errorf("TTL = %v, want %v", tk.TTL(), DefaultTicketTTL)
	}
	for _, id := range []Identity{
		{User: "alice", Name: "Alice", Rooms: []string{"general", "team-*", "dm:*"}, Admin: true, Expires: t0.Add(time.Hour)},
		{User: "bob", Name: "bob", Expires: t0.Add(time.Hour)},                        // rooms absent
		{User: "carol", Name: "carol", Rooms: []string{}, Expires: t0.Add(time.Hour)}, // no rooms
		{User: "org:dave", Name: "Dävé <&>"},                                          // no expiry known
	} {
		ticket, err := tk.Issue(id)
		if err != nil {
			t.Fatalf("Issue(%+v): %v", id, err)
		}
		if strings.Trim(ticket, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.") != "" {
			t.Errorf("ticket %q is not URL-safe", ticket)
		}
		for range 2 { // reusable until expiry
			got, err := tk.Redeem(ticket)
			if err != nil {
				t.Fatalf("Redeem: %v", err)
			}
			assertIdentity(t, got, id)
		}
	}
}

func TestTicketExpiry(t *testing.T) {
	tests := []struct {
		name    string
		expires time.Time // the identity's
		lastOK  time.Duration
	}{
		{"ticket ttl", t0.Add(time.Hour), DefaultTicketTTL - time.Millisecond},
		{"capped by token expiry", t0.Add(10 * time.Second), 10*time.Second - time.Millisecond},
		{"no token expiry", time.Time{}, DefaultTicketTTL - time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &clock{t0}
			tk := NewTickets(ticketKey, DefaultTicketTTL, c.Now)
			ticket, err := tk.Issue(Identity{User: "alice", Expires: tt.expires})
			if err != nil {
				t.Fatal(err)
			}
			c.t = t0.Add(tt.lastOK)
			if _, err := tk.Redeem(ticket); err != nil {
				t.Errorf("Redeem at +%v: %v", tt.lastOK, err)
			}
			c.t = t0.Add(tt.lastOK + time.Millisecond)
			_, err = tk.Redeem(ticket)
			if err == nil || codeOf(t, err) != protocol.CodeTokenExpired {
				t.Errorf("Redeem at +%v: %v, want token_expired", tt.lastOK+time.Millisecond, err)
			}
		})
	}
}

func TestTicketIssueRejects(t *testing.T) {
	tk := NewTickets(ticketKey, time.Minute, fixedNow)
	tests := []struct {
		name string
		id   Identity
		want protocol.Code
	}{
		{"no user", Identity{Name: "ghost", Expires: t0.Add(time.Hour)}, protocol.CodeUnauthorized},
		{"expired identity", Identity{User: "alice", Expires: t0}, protocol.CodeTokenExpired},
		{"too large", Identity{User: "alice", Rooms: []string{strings.Repeat("r", MaxTicketLen)}}, protocol.CodeBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ticket, err := tk.Issue(tt.id)
			if err == nil {
				t.Fatalf("Issue succeeded: %q", ticket)
			}
			if got := codeOf(t, err); got != tt.want {
				t.Errorf("code = %s, want %s", got, tt.want)
			}
		})
	}
}

// replaceAt returns s with the byte at i replaced by a different
// base64url character.
func replaceAt(s string, i int) string {
	c := byte('A')
	if s[i] == 'A' {
		c = 'B'
	}
	return s[:i] + string(c) + s[i+1:]
}

func TestTicketTamper(t *testing.T) {
	tk := NewTickets(ticketKey, time.Minute, fixedNow)
	id := Identity{User: "alice", Rooms: []string{"general"}, Expires: t0.Add(time.Hour)}
	ticket, err := tk.Issue(id)
	if err != nil {
		t.Fatal(err)
	}
	payload, mac, _ := strings.Cut(ticket, ".")
	forged := base64.RawURLEncoding.EncodeToString([]byte(`{"u":"alice","r":null,"a":true,"x":9999999999999}`))
	other := NewTickets([]byte("some other key"), time.Minute, fixedNow)
	foreign, err := other.Issue(id)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{
		"empty":           "",
		"no dot":          payload + mac,
		"extra dot":       ticket + ".x",
		"payload only":    payload + ".",
		"mac only":        "." + mac,
		"forged payload":  forged + "." + mac,
		"mac of payload":  payload + "." + payload,
		"wrong key":       foreign,
		"bad base64 mac":  payload + ".!!!!",
		"padded mac":      payload + "." + mac + "=",
		"over-long":       strings.Repeat("A", MaxTicketLen+1) + "." + mac,
		"a jwt, not mine": sign(t, jwt.SigningMethodHS256, hsSecret, claimsFor("alice", nil)),
	}
	for i := range len(payload) {
		cases["payload byte "+strconv.Itoa(i)] = replaceAt(ticket, i)
	}
	for i := len(payload) + 1; i < len(ticket); i++ {
		cases["mac byte "+strconv.Itoa(i)] = replaceAt(ticket, i)
	}
	for name, bad := range cases {
		got, err := tk.Redeem(bad)
		if err == nil {
			t.Errorf("%s: Redeem accepted %q as %+v", name, bad, got)
			continue
		}
		if code := codeOf(t, err); code != protocol.CodeUnauthorized {
			t.Errorf("%s: code = %s, want unauthorized", name, code)
		}
		assertNoSecret(t, err, bad)
	}
}

func TestTicketKeys(t *testing.T) {
	id := Identity{User: "alice", Expires: t0.Add(time.Hour)}
	// Nodes sharing a JWT secret share tickets through DeriveTicketKey.
	a := NewTickets(DeriveTicketKey(hsSecret), 0, fixedNow)
	b := NewTickets(DeriveTicketKey(hsSecret), 0, fixedNow)
	ticket, err := a.Issue(id)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Redeem(ticket); err != nil {
		t.Errorf("node b rejects node a's ticket: %v", err)
	}
	if string(DeriveTicketKey(hsSecret)) == string(hsSecret) {
		t.Error("derived ticket key equals the JWT secret")
	}
	for name, tk := range map[string]*Tickets{
		"other secret":       NewTickets(DeriveTicketKey([]byte("other")), 0, fixedNow),
		"the raw jwt secret": NewTickets(hsSecret, 0, fixedNow),
		"random key":         NewTickets(nil, 0, fixedNow),
	} {
		if _, err := tk.Redeem(ticket); err == nil || codeOf(t, err) != protocol.CodeUnauthorized {
			t.Errorf("%s: Redeem = %v, want unauthorized", name, err)
		}
	}
	// Two random-key instances do not share tickets.
	r1, r2 := NewTickets(nil, 0, fixedNow), NewTickets(nil, 0, fixedNow)
	ticket, err = r1.Issue(id)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r2.Redeem(ticket); err == nil {
		t.Error("random-key instances share tickets")
	}
}
