package auth

import (
	"strings"
	"time"

	"github.com/chatd/chatd/core/protocol"
)

// DMPrefix starts the name of every direct-message room: "dm:<a>:<b>",
// where a and b are the two user ids in sorted order (a <= b).
const DMPrefix = "dm:"

// Identity is who a request acts for, as proven by a token or a ticket.
// It is a plain value: safe to copy and to share between goroutines as long
// as nobody mutates Rooms.
type Identity struct {
	// User is the user id (the token's sub). For an identity from Verify
	// or Redeem it passes protocol.ValidUser.
	User string
	// Name is the display name (the token's name, or User when absent).
	Name string
	// Rooms is the token's rooms claim. Nil means the claim was absent (or
	// null): any public room is allowed. A non-nil empty slice allows no
	// room at all. An entry ending in "*" matches by prefix.
	Rooms []string
	// Admin grants the admin API.
	Admin bool
	// Ticket says a ticket, not a token, proved the identity. A ticket
	// travels in a URL and may leak, so what it opens may receive, but
	// not write, nor have its joins remembered in the user's room list,
	// until the client proves its token in-band (refresh).
	Ticket bool
	// TicketBound says Expires is the ticket's own expiry, before its
	// token's: a stream the ticket opened ends then (4013), unless the
	// client proves its token in-band.
	TicketBound bool
	// Expires is the token's exp claim. The zero time means no expiry is
	// known (an Identity built by hand). For a stream opened with a ticket
	// that expires before its token, it is the ticket's (TicketBound).
	Expires time.Time
}

// CanAccess reports whether id may read and write room. It returns nil or
// a *protocol.Error with code forbidden.
//
// A direct-message room ("dm:<a>:<b>", ids sorted, a <= b) is open only to
// a and b, whatever Rooms says; a dm: room that is not in sorted form is
// open to nobody. Admin does not bypass this rule. If Rooms is non-nil, the
// room must also match one of its entries, so a token that limits rooms
// must list "dm:*" (or the exact dm room) to allow direct messages.
//
// User ids may contain ':', so a dm room name can be read more than one
// way: "dm:a:b:c" is open to a and "b:c", and also to "a:b" and c. Issuers
// that use ':' in ids should know that such pairs share a room.
//
// CanAccess does not check that room is a well-formed name; the caller
// validates names before asking.
func (id Identity) CanAccess(room string) error {
	if strings.HasPrefix(room, DMPrefix) && !id.inDM(room[len(DMPrefix):]) {
		return forbidden(room)
	}
	if id.Rooms == nil {
		return nil
	}
	for _, pattern := range id.Rooms {
		if matchRoom(pattern, room) {
			return nil
		}
	}
	return forbidden(room)
}

// inDM reports whether id.User is one of the two users named by pair, the
// part of a dm room name after "dm:". The other id must be non-empty and on
// the correct side of id.User in sort order.
func (id Identity) inDM(pair string) bool {
	u := id.User
	if u == "" {
		return false
	}
	if other, ok := strings.CutPrefix(pair, u+":"); ok && other != "" && other >= u {
		return true
	}
	if other, ok := strings.CutSuffix(pair, ":"+u); ok && other != "" && other <= u {
		return true
	}
	return false
}

// DMPeer returns the other user of the direct-message room room for
// user, and whether room is a dm room open to user (see CanAccess). In
// "dm:a:b:c" read by user a, the peer is "b:c".
func DMPeer(room, user string) (string, bool) {
	pair, ok := strings.CutPrefix(room, DMPrefix)
	if !ok || !(Identity{User: user}).inDM(pair) {
		return "", false
	}
	if other, ok := strings.CutPrefix(pair, user+":"); ok && other != "" && other >= user {
		return other, true
	}
	other, _ := strings.CutSuffix(pair, ":"+user)
	return other, true
}

// DMRoom returns the name of the direct-message room between users a and
// b: "dm:" + the smaller id + ":" + the larger.
func DMRoom(a, b string) string {
	if b < a {
		a, b = b, a
	}
	return DMPrefix + a + ":" + b
}

// matchRoom reports whether room matches pattern: by prefix when pattern
// ends in "*", exactly otherwise.
func matchRoom(pattern, room string) bool {
	if prefix, ok := strings.CutSuffix(pattern, "*"); ok {
		return strings.HasPrefix(room, prefix)
	}
	return pattern == room
}

func forbidden(room string) error {
	return protocol.Errorf(protocol.CodeForbidden, "not allowed in room %q", room)
}
