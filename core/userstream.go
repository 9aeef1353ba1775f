package core

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"

	"github.com/chatd/chatd/core/protocol"
)

// User-scoped events. Each user has a stream, kept by the engine like a
// room's log under a name no client can use (UserStream): every event
// that changes the user's room list is appended to it, gets the next seq
// and is published to every node subscribed to it. Each session of the
// user follows the stream as the room "~" (protocol.UserRoom): WebSocket
// sessions from the start, live; SSE and poll sessions from the "~"
// position of their cursor. So delivery is exact the way a room's is:
// nothing between two polls is lost, nothing is delivered twice, and any
// node can resume it. The stream keeps the last UserStreamRetain events;
// a client that falls further behind is told recovered:false and reads
// its list again (GET /v1/rooms).

// userEvent is one event as a user's stream stores it, in the text of a
// stored message.
type userEvent struct {
	Room     string `json:"r"`
	Reason   string `json:"why"`
	Peer     string `json:"p,omitempty"`  // a DM's other user
	PeerName string `json:"pn,omitempty"` // their name when the event was made
}

// tell appends ev to user's stream. id makes the append idempotent: an
// event that a retried request would make again carries the same id, so
// it is stored once; "" gives it a random one.
func (h *Hub) tell(ctx context.Context, user string, ev userEvent, id string) error {
	if id == "" {
		id = randomID()
	}
	text, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	_, _, err = h.store.Append(ctx, protocol.Message{Room: UserStream(user), ID: id, From: user, Text: string(text)})
	return err
}

// randomID returns a fresh event id.
func randomID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "e" + hex.EncodeToString(b[:])
}

// userEventFrame returns a stored event of a user's stream as the frame
// its sessions get: a "room" envelope whose seq is the stream's, and
// whose position, for cursors, is under "~".
func userEventFrame(m protocol.Message) Frame {
	var ev userEvent
	_ = json.Unmarshal([]byte(m.Text), &ev) // a record that does not decode still moves the position
	e := protocol.Envelope{Type: protocol.TypeRoom, Room: ev.Room, Reason: ev.Reason, Seq: m.Seq, TS: m.TS}
	if ev.Peer != "" {
		e.DM = &protocol.Peer{User: ev.Peer, Name: ev.PeerName}
	}
	return Frame{Type: protocol.TypeRoom, Room: protocol.UserRoom, Seq: m.Seq, Data: protocol.Encode(e)}
}

// wireRoom is the name a room has on the wire: "~" for the user's
// stream, its own name for any other.
func wireRoom(name string) string {
	if IsUserStream(name) {
		return protocol.UserRoom
	}
	return name
}
