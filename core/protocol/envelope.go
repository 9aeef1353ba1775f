package protocol

import "slices"

// Envelope types. Client frames and server frames share one namespace.
const (
	TypeJoin       = "join"
	TypeLeave      = "leave"
	TypeSend       = "send"
	TypeRead       = "read"
	TypeTyping     = "typing"
	TypePing       = "ping"
	TypePong       = "pong"
	TypeRefresh    = "refresh"
	TypeJoined     = "joined"
	TypeMessage    = "message"
	TypeAck        = "ack"
	TypeReceipt    = "receipt"
	TypePresence   = "presence"
	TypeControl    = "control"
	TypeError      = "error"
	TypeDisconnect = "disconnect"
	TypeEdit       = "edit"   // client: edit a message; server: the stored edit
	TypeDelete     = "delete" // client: delete a message; server: the stored delete
	TypeRoom       = "room"   // a user-scoped event: a room appeared in or left the user's list
)

// Envelope is one frame of the protocol. Fields that a type does not use
// stay at their zero value and are omitted on the wire. Fields whose zero
// value is meaningful on some type (since, head, recovered, online) are
// pointers so that absent and zero stay distinct.
type Envelope struct {
	Type string `json:"type"`
	Ref  string `json:"ref,omitempty"`

	Room  string  `json:"room,omitempty"`
	Since *uint64 `json:"since,omitempty"`
	ID    string  `json:"id,omitempty"`
	Text  string  `json:"text,omitempty"`
	Seq   uint64  `json:"seq,omitempty"`
	Token string  `json:"token,omitempty"`

	// Edits, deletes and attachments (see edit.go).
	Target  uint64 `json:"target,omitempty"`  // edit, delete: the seq of the message they change
	Files   []File `json:"files,omitempty"`   // send: file ids; message: the resolved files
	Edited  int64  `json:"edited,omitempty"`  // message: when its text was last edited (Unix ms)
	Deleted bool   `json:"deleted,omitempty"` // message, edit: deleted; text and files removed

	From string `json:"from,omitempty"`
	Name string `json:"name,omitempty"`
	User string `json:"user,omitempty"`
	TS   int64  `json:"ts,omitempty"`

	Head      *uint64 `json:"head,omitempty"`
	Recovered *bool   `json:"recovered,omitempty"`
	Online    *bool   `json:"online,omitempty"`
	Count     *int    `json:"count,omitempty"` // presence in a large room: users online

	// Changes is, on a batched presence envelope, several users who came
	// online or went offline in Room, in place of User, Name and Online.
	Changes []PresenceChange `json:"changes,omitempty"`

	// Reads is, on a batched receipt, several users' read positions in
	// Room (user → seq), in place of User and Seq.
	Reads map[string]uint64 `json:"reads,omitempty"`

	Level          *int            `json:"level,omitempty"`
	Transports     []string        `json:"transports,omitempty"`
	Features       map[string]bool `json:"features,omitempty"`
	PollIntervalMS int             `json:"poll_interval_ms,omitempty"`

	Code        string `json:"code,omitempty"`
	Message     string `json:"message,omitempty"`
	CloseCode   int    `json:"close_code,omitempty"`
	Reason      string `json:"reason,omitempty"`
	ReconnectMS int    `json:"reconnect_ms,omitempty"`

	// RTTMS is a round trip the client measured (ping to pong, or send to
	// ack), in milliseconds, reported on any client envelope. The server
	// ignores values outside (0, 60000].
	RTTMS float64 `json:"rtt_ms,omitempty"`
	// DM is, on a "room" envelope for a direct-message room, the other
	// user; Reason then says why the room changed (ReasonDM, …).
	DM *Peer `json:"dm,omitempty"`
}

// PresenceChange is one user going online or offline in a room.
type PresenceChange struct {
	User   string `json:"user"`
	Name   string `json:"name,omitempty"`
	Online bool   `json:"online"`
}

// BatchParam is the query parameter of /v1/ws, /v1/sse and /v1/poll with
// which a client says it reads batched receipt and presence envelopes
// (reads, changes): batch=1. Without it, each position or change comes in
// the plain form.
const BatchParam = "batch"

// MaxBatch is the most users one batched receipt or presence envelope
// carries; the server splits a longer batch.
const MaxBatch = 256

// Batched reports whether e is a batched receipt or presence envelope.
func (e Envelope) Batched() bool {
	return e.Type == TypeReceipt && e.Reads != nil || e.Type == TypePresence && e.Changes != nil
}

// Unbatch returns the plain envelopes e stands for: a batched receipt or
// presence envelope's, one per user (receipts sorted by user), and e
// alone for any other envelope.
func (e Envelope) Unbatch() []Envelope {
	switch {
	case e.Type == TypeReceipt && e.Reads != nil:
		users := make([]string, 0, len(e.Reads))
		for u := range e.Reads {
			users = append(users, u)
		}
		slices.Sort(users)
		out := make([]Envelope, len(users))
		for i, u := range users {
			out[i] = Envelope{Type: TypeReceipt, Room: e.Room, User: u, Seq: e.Reads[u]}
		}
		return out
	case e.Type == TypePresence && e.Changes != nil:
		out := make([]Envelope, len(e.Changes))
		for i, c := range e.Changes {
			out[i] = Envelope{Type: TypePresence, Room: e.Room, User: c.User, Name: c.Name, Online: Ptr(c.Online)}
		}
		return out
	}
	return []Envelope{e}
}

// Ptr returns a pointer to v, for the pointer fields of Envelope.
func Ptr[T any](v T) *T { return &v }

// Message is one entry of a room's log as the hub and the stores see it:
// a chat message, or (Kind) an edit or a delete of the message at seq
// Target, stored with a seq of its own. A message read back from a store
// carries its current state: its latest text and Edited, or Deleted with
// no text and no files. It holds a slice, so compare with Equal.
type Message struct {
	Room string `json:"room"`
	Seq  uint64 `json:"seq"`
	ID   string `json:"id"`
	From string `json:"from"`
	Name string `json:"name"`
	Text string `json:"text"`
	TS   int64  `json:"ts"` // Unix milliseconds, set by the server when stored.

	Kind    string `json:"kind,omitempty"`    // "" for a message, TypeEdit or TypeDelete
	Target  uint64 `json:"target,omitempty"`  // edit, delete: the message's seq
	Files   []File `json:"files,omitempty"`   // a message's attachments
	Edited  int64  `json:"edited,omitempty"`  // a message: its latest edit's TS; 0: never edited
	Deleted bool   `json:"deleted,omitempty"` // a message, or an edit of one, that was deleted
}

// Envelope returns m as the envelope of its kind: message, edit or delete.
func (m Message) Envelope() Envelope {
	e := Envelope{Type: TypeMessage, Room: m.Room, Seq: m.Seq, ID: m.ID,
		From: m.From, Name: m.Name, Text: m.Text, TS: m.TS,
		Files: m.Files, Edited: m.Edited, Deleted: m.Deleted}
	if m.Kind != "" {
		e.Type, e.Target = m.Kind, m.Target
	}
	return e
}

// Ack returns the ack envelope that answers the send which stored m.
func (m Message) Ack() Envelope {
	return Envelope{Type: TypeAck, Ref: m.ID, ID: m.ID, Room: m.Room, Seq: m.Seq, TS: m.TS}
}
