package protocol

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
	TypeRoom       = "room" // a user-scoped event: a room appeared in or left the user's list
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

	From string `json:"from,omitempty"`
	Name string `json:"name,omitempty"`
	User string `json:"user,omitempty"`
	TS   int64  `json:"ts,omitempty"`

	Head      *uint64 `json:"head,omitempty"`
	Recovered *bool   `json:"recovered,omitempty"`
	Online    *bool   `json:"online,omitempty"`
	Count     *int    `json:"count,omitempty"` // presence in a large room: users online

	Level          *int            `json:"level,omitempty"`
	Transports     []string        `json:"transports,omitempty"`
	Features       map[string]bool `json:"features,omitempty"`
	PollIntervalMS int             `json:"poll_interval_ms,omitempty"`

	Code        string `json:"code,omitempty"`
	Message     string `json:"message,omitempty"`
	CloseCode   int    `json:"close_code,omitempty"`
	Reason      string `json:"reason,omitempty"`
	ReconnectMS int    `json:"reconnect_ms,omitempty"`

	// DM is, on a "room" envelope for a direct-message room, the other
	// user; Reason then says why the room changed (ReasonDM, …).
	DM *Peer `json:"dm,omitempty"`
}

// Ptr returns a pointer to v, for the pointer fields of Envelope.
func Ptr[T any](v T) *T { return &v }

// Message is a stored chat message as the hub and the stores see it.
type Message struct {
	Room string `json:"room"`
	Seq  uint64 `json:"seq"`
	ID   string `json:"id"`
	From string `json:"from"`
	Name string `json:"name"`
	Text string `json:"text"`
	TS   int64  `json:"ts"` // Unix milliseconds, set by the server when stored.
}

// Envelope returns m as a message envelope.
func (m Message) Envelope() Envelope {
	return Envelope{Type: TypeMessage, Room: m.Room, Seq: m.Seq, ID: m.ID,
		From: m.From, Name: m.Name, Text: m.Text, TS: m.TS}
}

// Ack returns the ack envelope that answers the send which stored m.
func (m Message) Ack() Envelope {
	return Envelope{Type: TypeAck, Ref: m.ID, ID: m.ID, Room: m.Room, Seq: m.Seq, TS: m.TS}
}
