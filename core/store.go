package core

import (
	"context"
	"errors"

	"github.com/chatd/chatd/core/protocol"
)

// ErrClosed is returned by a Store or Hub used after Close.
var ErrClosed = errors.New("core: closed")

// ErrSlow is what a Transport's Write returns when the client cannot keep
// up; the session is then closed as a slow consumer (4008).
var ErrSlow = errors.New("core: slow consumer")

// ErrDone is what a Transport's Write returns when it has taken all it
// will, such as a poll answer that is full. The session then ends
// normally (DisconnectDone): it is not a write failure and feeds no
// failure signal.
var ErrDone = errors.New("core: transport done")

// Page is a slice of one room's history plus the room's bounds.
type Page struct {
	Messages []protocol.Message // oldest first
	Head     uint64             // the room's latest seq; 0 for an empty room
	First    uint64             // the oldest retained seq; Head+1 when none is retained
}

// Store keeps rooms' history durably. It is the seam between the hub and
// an engine (the embedded bbolt store, Redis). Every method is safe for
// concurrent use.
//
// An engine must also deliver each newly stored message to the hub after
// it is durable, in per-room seq order (publish after store). How it is
// told where to deliver is engine configuration, set up by cmd.
type Store interface {
	// Append stores m in m.Room. It assigns the next seq (no gaps) and the
	// timestamp, and returns only once the message is durable. If a message
	// with the same (room, id) is already stored, it stores nothing and
	// returns that message with dup set.
	//
	// When m is an edit or a delete (m.Kind) of the message at m.Target,
	// Append, after the dedupe and in the same atomic step, checks that
	// target: a retained message that is not deleted (else a
	// *protocol.Error: not_found for one beyond the head, pruned or
	// deleted; bad_request for an edit or a delete, or for a message
	// edited protocol.MaxEdits times already), and stores nothing when it
	// refuses. Then it stores m with its own seq and applies it: an edit
	// gives the target m.Text and Edited m.TS; a delete removes the
	// target's text and files and sets Deleted, and removes the text of
	// every edit of it too. From then on every read (Since, Before,
	// Lookup) returns the target, and its edits, in that state; the
	// entries published live are as stored. Who may edit or delete is the
	// hub's to check. The files a delete or a pruning removes are reported
	// once to the registered handler if it is a FileReleaser.
	Append(ctx context.Context, m protocol.Message) (stored protocol.Message, dup bool, err error)

	// Lookup returns the stored message with (room, id), if it is still
	// retained. The hub uses it to answer a retried send that would
	// otherwise be refused by the rate limit.
	Lookup(ctx context.Context, room, id string) (protocol.Message, bool, error)

	// Since returns up to limit messages of room with seq > after, oldest first.
	Since(ctx context.Context, room string, after uint64, limit int) (Page, error)

	// Before returns up to limit messages of room with seq < before, oldest
	// first; before == 0 means from the head. It is the history API.
	Before(ctx context.Context, room string, before uint64, limit int) (Page, error)

	// SetReads raises each user's read position in each room to Seq, all
	// at once (the hub hands it a coalesced batch), and sets each Seq to
	// the stored position, which is never lower than before. The positions
	// are durable when it returns.
	SetReads(ctx context.Context, reads []ReadPosition) error

	// Reads returns every stored read position in room, by user.
	Reads(ctx context.Context, room string) (map[string]uint64, error)

	// Close flushes pending writes and releases the store.
	Close() error
}

// ReadPosition is one user's read position in one room.
type ReadPosition struct {
	Room, User string
	Seq        uint64
}

// Recovered reports whether a resume after seq `after` is exact given a
// page's bounds: nothing after `after` has been pruned, and after is not
// beyond the head.
func (p Page) Recovered(after uint64) bool {
	return after <= p.Head && after+1 >= p.First
}
