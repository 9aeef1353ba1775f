package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strings"
	"time"

	"github.com/chatd/chatd/core/protocol"
)

// DefaultTicketTTL is how long a ticket is valid when NewTickets is given
// a ttl of zero or less. The contract's POST /v1/ticket promises 60 s.
const DefaultTicketTTL = 60 * time.Second

// MaxTicketLen is the longest ticket Redeem will look at, in bytes. It
// leaves room for an identity taken from a MaxTokenLen token.
const MaxTicketLen = 16 << 10

// ticketContext separates ticket MACs from any other use of the key.
const ticketContext = "chatd-ticket-v1."

// Tickets issues and redeems short-lived tickets: signed, self-contained
// identities that stand in for a JWT in a URL (?ticket= on the WebSocket,
// SSE and poll endpoints), so long-lived tokens stay out of URLs and logs.
//
// A ticket is base64url(JSON payload) + "." + base64url(HMAC-SHA256 of the
// payload). It is stateless: any node holding the same key redeems it, so
// the nodes of a cluster must share the key (cmd derives it from the HS256
// secret with DeriveTicketKey, or takes --ticket-secret). Nothing records
// use, so a ticket may be redeemed any number of times until it expires:
// EventSource reconnects to the URL it was given, ticket included, and a
// one-time ticket would lock it out after its first drop. The short ttl
// bounds what a leaked URL is worth.
//
// Tickets is safe for concurrent use.
type Tickets struct {
	// Static after construction.
	key []byte
	ttl time.Duration
	now func() time.Time
}

// NewTickets returns a Tickets that signs with key. An empty key means a
// random one, good for a single node only. ttl <= 0 means
// DefaultTicketTTL; a nil now means time.Now.
func NewTickets(key []byte, ttl time.Duration, now func() time.Time) *Tickets {
	if len(key) == 0 {
		key = make([]byte, 32)
		rand.Read(key) // never fails: see crypto/rand.Read
	} else {
		key = append([]byte(nil), key...)
	}
	if ttl <= 0 {
		ttl = DefaultTicketTTL
	}
	if now == nil {
		now = time.Now
	}
	return &Tickets{key: key, ttl: ttl, now: now}
}

// DeriveTicketKey derives a ticket key from a JWT HMAC secret, so that a
// cluster configured with one --jwt-secret shares tickets too, while the
// ticket key is never the JWT key itself.
func DeriveTicketKey(secret []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("chatd ticket key v1"))
	return m.Sum(nil)
}

// TTL returns the longest life of a ticket. A ticket for an identity whose
// token expires sooner lives only that long.
func (t *Tickets) TTL() time.Duration { return t.ttl }

// ticketPayload is the signed part of a ticket. Times are Unix
// milliseconds. Rooms has no omitempty: null (claim absent, any room) and
// [] (no room) must stay apart.
type ticketPayload struct {
	User    string   `json:"u"`
	Name    string   `json:"n,omitempty"`
	Rooms   []string `json:"r"`
	Admin   bool     `json:"a,omitempty"`
	Expires int64    `json:"e,omitempty"` // the identity's; 0 = none
	Until   int64    `json:"x"`           // the ticket's
}

// Issue returns a ticket for id. It expires after TTL or when id does,
// whichever is sooner. An identity whose user is not a valid user id
// (protocol.ValidUser; empty included) is unauthorized; one that has
// already expired is token_expired.
func (t *Tickets) Issue(id Identity) (string, error) {
	if protocol.ValidUser(id.User) != nil {
		return "", protocol.Errorf(protocol.CodeUnauthorized, "no valid identity to issue a ticket for")
	}
	now := t.now()
	until := now.Add(t.ttl)
	p := ticketPayload{User: id.User, Name: id.Name, Rooms: id.Rooms, Admin: id.Admin}
	if !id.Expires.IsZero() {
		if !now.Before(id.Expires) {
			return "", protocol.Errorf(protocol.CodeTokenExpired, "token expired")
		}
		if id.Expires.Before(until) {
			until = id.Expires
		}
		p.Expires = id.Expires.UnixMilli()
	}
	p.Until = until.UnixMilli()
	body, err := json.Marshal(p)
	if err != nil {
		return "", protocol.Errorf(protocol.CodeInternal, "cannot encode ticket")
	}
	payload := base64.RawURLEncoding.EncodeToString(body)
	ticket := payload + "." + base64.RawURLEncoding.EncodeToString(t.mac(payload))
	if len(ticket) > MaxTicketLen {
		return "", protocol.Errorf(protocol.CodeBadRequest, "identity too large for a ticket")
	}
	return ticket, nil
}

// Redeem checks ticket's MAC (in constant time) and expiry and returns the
// identity it carries, with Expires set to the original token's expiry. An
// expired ticket is token_expired; anything else wrong, a user that is not
// a valid user id included, is unauthorized.
// Tickets may be redeemed repeatedly until they expire.
func (t *Tickets) Redeem(ticket string) (Identity, error) {
	id, _, err := t.RedeemUntil(ticket)
	return id, err
}

// RedeemUntil is Redeem that also returns when the ticket itself expires:
// until then, redeeming it again gives the same identity.
func (t *Tickets) RedeemUntil(ticket string) (Identity, time.Time, error) {
	bad := protocol.Errorf(protocol.CodeUnauthorized, "invalid ticket")
	if ticket == "" || len(ticket) > MaxTicketLen {
		return Identity{}, time.Time{}, bad
	}
	payload, sig, ok := strings.Cut(ticket, ".")
	if !ok {
		return Identity{}, time.Time{}, bad
	}
	mac, err := base64.RawURLEncoding.Strict().DecodeString(sig)
	if err != nil || !hmac.Equal(mac, t.mac(payload)) {
		return Identity{}, time.Time{}, bad
	}
	body, err := base64.RawURLEncoding.Strict().DecodeString(payload)
	if err != nil {
		return Identity{}, time.Time{}, bad
	}
	var p ticketPayload
	if err := decodeTicketPayload(body, &p); err != nil || protocol.ValidUser(p.User) != nil || p.Until == 0 {
		return Identity{}, time.Time{}, bad
	}
	until := time.UnixMilli(p.Until)
	if !t.now().Before(until) {
		return Identity{}, time.Time{}, protocol.Errorf(protocol.CodeTokenExpired, "ticket expired")
	}
	id := Identity{User: p.User, Name: p.Name, Rooms: p.Rooms, Admin: p.Admin}
	if p.Expires != 0 {
		id.Expires = time.UnixMilli(p.Expires)
	}
	return id, until, nil
}

func (t *Tickets) mac(payload string) []byte {
	m := hmac.New(sha256.New, t.key)
	m.Write([]byte(ticketContext))
	m.Write([]byte(payload))
	return m.Sum(nil)
}
