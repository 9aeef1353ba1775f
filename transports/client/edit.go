package client

import (
	"context"

	"github.com/chatd/chatd/core/protocol"
)

// SendFiles sends text with the files whose ids are given (from POST
// /v1/files; at most protocol.MaxFiles) to room under a new random id,
// and returns the ack. With files the text may be empty. The message
// then carries the files as the server resolved them. It retries as
// SendID does.
func (c *Client) SendFiles(ctx context.Context, room, text string, files []string) (protocol.Envelope, error) {
	return c.SendFilesID(ctx, room, NewID(), text, files)
}

// SendFilesID is SendFiles under id.
func (c *Client) SendFilesID(ctx context.Context, room, id, text string, files []string) (protocol.Envelope, error) {
	return c.retried(ctx, protocol.Envelope{Type: protocol.TypeSend, Room: room, ID: id, Text: text,
		Files: protocol.FileRefs(files)})
}

// Edit replaces the text of the user's own message at seq in room, under
// a new random id, and returns the ack, which carries the edit's own seq
// (an edit is an entry of the room's log). The room's subscribers, this
// client included, then receive an edit envelope (type edit, target
// seq). It retries as SendID does: the server stores an edit id once.
// forbidden (not the author), not_found (the message is gone) and
// bad_request return at once as a *ServerError.
func (c *Client) Edit(ctx context.Context, room string, seq uint64, text string) (protocol.Envelope, error) {
	return c.EditID(ctx, room, NewID(), seq, text)
}

// EditID is Edit under id.
func (c *Client) EditID(ctx context.Context, room, id string, seq uint64, text string) (protocol.Envelope, error) {
	return c.retried(ctx, protocol.Envelope{Type: protocol.TypeEdit, Room: room, ID: id, Seq: seq, Text: text})
}

// Delete deletes the message at seq in room (the user's own, or any as
// an admin), under a new random id, and returns the ack, which carries
// the delete's own seq. Subscribers receive a delete envelope; from then
// on the message, and its edits, come without text or files. It retries
// and fails as Edit does.
func (c *Client) Delete(ctx context.Context, room string, seq uint64) (protocol.Envelope, error) {
	return c.DeleteID(ctx, room, NewID(), seq)
}

// DeleteID is Delete under id.
func (c *Client) DeleteID(ctx context.Context, room, id string, seq uint64) (protocol.Envelope, error) {
	return c.retried(ctx, protocol.Envelope{Type: protocol.TypeDelete, Room: room, ID: id, Seq: seq})
}

// httpTwin returns the endpoint and body of the HTTP twin of a send,
// edit or delete frame.
func httpTwin(e protocol.Envelope) (string, any) {
	switch e.Type {
	case protocol.TypeEdit:
		return "/v1/edit", map[string]any{"room": e.Room, "id": e.ID, "seq": e.Seq, "text": e.Text}
	case protocol.TypeDelete:
		return "/v1/delete", map[string]any{"room": e.Room, "id": e.ID, "seq": e.Seq}
	}
	body := map[string]any{"room": e.Room, "id": e.ID, "text": e.Text}
	if len(e.Files) > 0 {
		body["files"] = protocol.FileIDs(e.Files)
	}
	return "/v1/send", body
}

// positions reports whether e is an entry of a room's log, which moves
// the room's position: a message, an edit or a delete.
func positions(e protocol.Envelope) bool {
	switch e.Type {
	case protocol.TypeMessage, protocol.TypeEdit, protocol.TypeDelete:
		return true
	}
	return false
}
