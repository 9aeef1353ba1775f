package core

import (
	"context"
	"strings"

	"github.com/chatd/chatd/core/protocol"
)

// UserStore is the part of an engine that keeps what belongs to a user
// rather than to a room: display names and the user's room list. Every
// method is safe for concurrent use and, like Store's, durable when it
// returns.
type UserStore interface {
	// UserNames returns the stored names of those of users that have any.
	UserNames(ctx context.Context, users []string) (map[string]UserNames, error)

	// SetUserName stores name as user's chosen name (chosen, from PUT
	// /v1/me) or as the name last seen in the user's token. The two are
	// kept apart, so that recording a token's name never overwrites a
	// chosen one.
	SetUserName(ctx context.Context, user, name string, chosen bool) error

	// AddUserRoom puts room in user's room list, stamped with the
	// engine's clock, and reports whether it was not there before. A
	// list that would pass MaxListedRooms drops its oldest entries.
	AddUserRoom(ctx context.Context, user, room string) (added bool, err error)

	// RemoveUserRoom takes room out of user's list and reports whether it
	// was there.
	RemoveUserRoom(ctx context.Context, user, room string) (removed bool, err error)

	// UserRooms returns user's room list, the most recently added first,
	// at most MaxListedRooms.
	UserRooms(ctx context.Context, user string) ([]string, error)

	// RoomStates returns, for each of rooms in order, its bounds, its
	// newest retained message and user's read position there. A room
	// that does not exist has Head 0, First 1 and no Last.
	RoomStates(ctx context.Context, user string, rooms []string) ([]RoomState, error)
}

// UserNames are the names an engine keeps for one user.
type UserNames struct {
	Chosen string // set with PUT /v1/me; wins over every token
	Seen   string // the name claim of the user's token, as last seen
}

// RoomState is one room as the user's room list shows it.
type RoomState struct {
	Room  string
	Head  uint64            // the room's latest seq; 0 when empty
	First uint64            // the oldest retained seq; Head+1 when none is retained
	Read  uint64            // the user's stored read position
	Last  *protocol.Message // the newest retained message, if any
}

// MaxListedRooms bounds a user's room list: the rooms they joined and the
// direct-message rooms they are part of. Past it the oldest entries go.
const MaxListedRooms = 500

// UserStreamRetain is how many events a user's stream keeps: a session
// that resumes from further back is told recovered:false, and learns the
// rest from GET /v1/rooms.
const UserStreamRetain = 100

// userStreamPrefix starts the storage name of every user's stream. Room
// names cannot start with it (protocol.ValidRoom), so no client can join,
// read or send to a user's stream, and no room can collide with one.
const userStreamPrefix = protocol.UserRoom

// UserStream returns the name under which user's stream of "room" events
// is stored, like a room's log: seqs, idempotent appends, resume from a
// seq and publication to every node all come from the engine.
func UserStream(user string) string { return userStreamPrefix + user }

// IsUserStream reports whether room is the storage name of a user's
// stream.
func IsUserStream(room string) bool { return strings.HasPrefix(room, userStreamPrefix) }

// Retain returns how many messages an engine configured to keep max per
// room (negative: no limit) keeps in room: a user's stream keeps at most
// UserStreamRetain.
func Retain(room string, max int) int {
	if IsUserStream(room) && (max < 0 || max > UserStreamRetain) {
		return UserStreamRetain
	}
	return max
}

// UserLister is a UserStore that can hand over everything it keeps of
// its users. A hub reads it once, when it is made, into its caches of
// names and room lists: a node taking back its clients after a restart
// then answers their joins from memory instead of two engine reads each
// (docs/DESIGN.md, "A reconnect in one write"). Optional; an
// engine that several nodes share (Redis) leaves it out, since what one
// node reads at its start another may change.
type UserLister interface {
	// EachUser calls fn for each user the engine keeps anything of, with
	// their names and room list (in no particular order), until fn
	// returns false. rooms is only valid during the call.
	EachUser(ctx context.Context, fn func(user string, names UserNames, rooms [][]byte) bool) error
}
