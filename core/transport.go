package core

import (
	"time"

	"github.com/chatd/chatd/core/protocol"
)

// Transport moves encoded frames from a session to the wire. A transport
// reads client frames itself and hands them to Session.Handle; it has no
// Read method here.
type Transport interface {
	// Name is the transport's name as negotiate offers it: "websocket",
	// "sse" or "poll".
	Name() string

	// Write writes frames to the wire, batched as the transport sees fit.
	// The session calls it from its single writer goroutine only.
	Write(frames []Frame) error

	// Close ends the connection, telling the client d. The session calls
	// it once, from its writer goroutine, after the final frames.
	Close(d Disconnect)
}

// InlineWriter is a Transport whose Write only keeps frames in memory
// for its client to fetch later (a poll's next answer): it never waits on
// the network. A session whose transport is one skips its writer for a
// frame when it can: the frame is handed to WriteInline on the offering
// goroutine (the room's fan-out) when nothing is queued before it, no
// writer is running, and the frame is neither a Flush barrier nor one
// that rides (Config.EventDelay). What WriteInline refuses is queued for
// the writer as usual, and that writer exits as soon as the queue is
// empty instead of lingering, so that the next frame can go inline again.
//
// Without it, every message to a polling client woke that session's
// writer (and its write delay's timer) only to copy the frame into the
// poll's answer: two goroutine runs a message a session, most of the
// node's scheduling while it broadcast to thousands of polls.
type InlineWriter interface {
	Transport

	// WriteInline takes f into what the transport will write, as Write
	// would, if it can without blocking, without writing to the network
	// and without ending the session; otherwise it takes nothing and
	// returns false, and f goes to Write from the writer. It is called
	// with the session's lock held, and often a room's: it must not call
	// back into the Hub or the Session.
	WriteInline(f Frame) bool
}

// A Slot is a session writer's place among the writers at work
// (Config.WritersRunning), handed to a SlotWriter's WriteInSlot.
type Slot interface {
	// Release gives the place up for the next writer.
	Release()
	// Blocked is Release for a write that is about to wait for its
	// client (a socket buffer full); it is counted (Stats.BlockedWrites).
	Blocked()
}

// SlotWriter is a Transport that can keep its writer's slot through the
// system calls of a write. The writer calls WriteInSlot in place of
// Write while it holds a slot. The transport gives the slot back exactly
// once, with one call of Release or Blocked, from any goroutine, before
// or after WriteInSlot returns, but always before anything that could
// wait for its client (a full socket buffer, an upgrade not yet over).
// A Transport that is not one gets its writer's slot back before Write:
// its writes are not bounded, only the work before them.
type SlotWriter interface {
	Transport

	WriteInSlot(frames []Frame, slot Slot) error
	// WantsSlot reports whether the next write waits for a slot at all:
	// a connection's first write, the answer to its client's connect
	// (the greeting and the replies to its joins), does not. In a storm
	// of reconnects every answer is a first write, and making them wait
	// their turn cost the node a sixth more CPU until the last client
	// was back. Called from the writer goroutine.
	WantsSlot() bool
}

// Frame is one encoded server envelope, with what cursor-based transports
// need to know about it without decoding it.
type Frame struct {
	Type string // the envelope's type
	Room string // the envelope's room, if any
	Seq  uint64 // on message, edit, delete and joined frames: the client's position in Room after this frame
	Data []byte // the JSON envelope

	ephemeral bool
	lazy      bool          // a presence count: see Lazy
	flushed   chan struct{} // a Flush barrier: closed once written, never sent
	published time.Time     // live message frames: when the hub fanned it out
	shared    *shared       // fanned-out frames: what their sessions share; see Shared
}

// Positions reports whether f sets the client's position in f.Room to
// f.Seq: every entry of the log does (message, edit, delete), and so do
// joined frames, whose Seq is where the replay starts, and room frames,
// the user's events, whose Room is "~" (protocol.UserRoom).
func (f Frame) Positions() bool {
	switch f.Type {
	case protocol.TypeMessage, protocol.TypeJoined, protocol.TypeEdit, protocol.TypeDelete, protocol.TypeRoom:
		return true
	}
	return false
}

// Lazy reports whether f may wait for the next frame that is not lazy,
// or for a deadline, instead of going out on its own: a room's presence
// count, which only its latest value matters. A large room announces its
// count once a second while members come and go; a transport that
// answers per batch (a held poll) would otherwise answer, and be polled
// again, every second for that alone.
func (f Frame) Lazy() bool { return f.lazy }

// rides reports whether f, queued alone, may wait Config.EventDelay for
// a frame that goes at once: a room's typing, receipt or presence event,
// which nobody waits on. Heartbeats, replies, control frames, barriers and
// log entries go at once.
func (f Frame) rides() bool {
	if !f.ephemeral {
		return false
	}
	switch f.Type {
	case protocol.TypeTyping, protocol.TypeReceipt, protocol.TypePresence:
		return true
	}
	return false
}

// envelopeFrame encodes e as a frame.
func envelopeFrame(e protocol.Envelope) Frame {
	return Frame{Type: e.Type, Room: e.Room, Seq: e.Seq, Data: protocol.Encode(e)}
}

// Disconnect says why a session ended and how the client should come back.
type Disconnect struct {
	Code      int           // a protocol.Close* code
	Reason    string        // short, for humans and logs
	Reconnect time.Duration // suggested delay before reconnecting; 0 = client's choice
}

// Disconnect reasons, used for logs and the disconnects metric.
var (
	DisconnectNormal    = Disconnect{Code: 1000, Reason: "normal"}
	DisconnectDone      = Disconnect{Code: 1000, Reason: "answer complete"}
	DisconnectSlow      = Disconnect{Code: 4008, Reason: "slow consumer"}
	DisconnectHeartbeat = Disconnect{Code: 4009, Reason: "heartbeat timeout"}
	DisconnectExpired   = Disconnect{Code: 4012, Reason: "token expired"}
	// DisconnectTicketExpired ends a stream opened with a ticket that
	// was not refreshed with a token before the ticket expired.
	DisconnectTicketExpired = Disconnect{Code: 4013, Reason: "ticket expired"}
	DisconnectForbidden     = Disconnect{Code: 4003, Reason: "forbidden"}
	DisconnectWriteErr      = Disconnect{Code: 1011, Reason: "write failed"}
	DisconnectTooLarge      = Disconnect{Code: 1009, Reason: "frame too large"}
)
