package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/chatd/chatd/core/protocol"
)

// HistoryPage is one page of a room's history, as GET
// /v1/rooms/{room}/history answers it.
type HistoryPage struct {
	Messages []protocol.Envelope `json:"messages"` // oldest first
	Head     uint64              `json:"head"`     // the room's latest seq
	First    uint64              `json:"first"`    // the oldest seq retained; 0 if the server does not say
}

// History returns up to limit messages of room older than seq before (0:
// the newest page), oldest first, with the room's head; limit 0 takes the
// server's default page. It needs read permission on the room, not a join.
// It goes as GET with the bearer token, and is not retried, apart from
// once with a new token after unauthorized. A failure the server reports
// is a *ServerError.
func (c *Client) History(ctx context.Context, room string, before uint64, limit int) (HistoryPage, error) {
	if err := protocol.ValidRoom(room); err != nil {
		return HistoryPage{}, err
	}
	q := url.Values{}
	if before > 0 {
		q.Set("before", strconv.FormatUint(before, 10))
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	path := "/v1/rooms/" + url.PathEscape(room) + "/history"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	for refreshed := false; ; refreshed = true {
		tok, err := c.bearer(ctx)
		if err != nil {
			return HistoryPage{}, err
		}
		var p HistoryPage
		err = c.call(ctx, tok, http.MethodGet, path, nil, &p)
		if !isUnauthorized(err) || refreshed {
			return p, err
		}
		if _, err := c.newToken(ctx); err != nil {
			return HistoryPage{}, err
		}
	}
}
