package client

import (
	"context"
	"errors"
	"net/http"

	"github.com/chatd/chatd/core/protocol"
)

// Profile is the user as GET and PUT /v1/me show them: their id and the
// display name everyone sees.
type Profile struct {
	User string `json:"user"`
	Name string `json:"name"`
}

// RoomInfo is one room of the user's list, as GET /v1/rooms gives it.
type RoomInfo struct {
	Room   string             `json:"room"`
	Head   uint64             `json:"head"`   // the room's latest seq
	Read   uint64             `json:"read"`   // the user's read position
	Unread uint64             `json:"unread"` // retained seqs after Read
	Last   *protocol.Envelope `json:"last,omitempty"`
	DM     *protocol.Peer     `json:"dm,omitempty"` // a direct-message room's other user
}

// Me returns the user's id and display name (GET /v1/me).
func (c *Client) Me(ctx context.Context) (Profile, error) {
	var p Profile
	err := c.rest(ctx, http.MethodGet, "/v1/me", nil, &p)
	return p, err
}

// SetName makes name the user's display name on the server, over their
// token's name claim, from now on (PUT /v1/me); the server answers with
// the name as it keeps it (NFC, trimmed). A name with control, format or
// bidi-control characters, empty or over 64 characters, is refused with a
// *ServerError of code bad_request.
func (c *Client) SetName(ctx context.Context, name string) (Profile, error) {
	var p Profile
	err := c.rest(ctx, http.MethodPut, "/v1/me", map[string]string{"name": name}, &p)
	return p, err
}

// ListRooms returns the user's room list (GET /v1/rooms): the rooms they
// joined, remembered across sessions, and their direct-message rooms,
// the newest conversation first, each with its unread count and newest
// message. It is what a client shows before it joins anything; with
// Config.UserEvents, "room" envelopes on Events say when it changes.
func (c *Client) ListRooms(ctx context.Context) ([]RoomInfo, error) {
	var out struct {
		Rooms []RoomInfo `json:"rooms"`
	}
	err := c.rest(ctx, http.MethodGet, "/v1/rooms", nil, &out)
	return out.Rooms, err
}

// rest makes one HTTP call with the bearer token, once more with a new
// token after unauthorized.
func (c *Client) rest(ctx context.Context, method, path string, body, out any) error {
	for refreshed := false; ; refreshed = true {
		tok, err := c.bearer(ctx)
		if err != nil {
			return err
		}
		err = c.call(ctx, tok, method, path, body, out)
		if !isUnauthorized(err) || refreshed {
			return err
		}
		if _, err := c.newToken(ctx); err != nil {
			return err
		}
	}
}

// tellLeave takes room out of the user's list on the server when no
// WebSocket carries the leave frame (POST /v1/leave). A server without
// the endpoint (404) is not an error.
func (c *Client) tellLeave(room string) error {
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.ConnectTimeout)
	defer cancel()
	err := c.rest(ctx, http.MethodPost, "/v1/leave", map[string]string{"room": room}, nil)
	var se *ServerError
	if errors.As(err, &se) && se.Status == http.StatusNotFound {
		return nil
	}
	return err
}
