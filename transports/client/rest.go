package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/chatd/chatd/core/protocol"
)

// call makes one short HTTP request with the bearer token, bounded by
// ConnectTimeout, and decodes a 200 answer into out (if not nil). Any
// other status is a *ServerError.
func (c *Client) call(ctx context.Context, tok, method, path string, body, out any) error {
	return c.do(ctx, tok, method, path, body, out, false)
}

// callReplayable is call for a request that the server applies once
// however often it comes: a read receipt up to a seq, a typing signal, a
// send, edit or delete by its id. net/http may then write it again on a
// new connection when the kept-alive one it went on turns out to have
// been closed by the server meanwhile (its idle timeout crossing the
// request), which otherwise fails the call with a network error. The
// request is marked with an empty Idempotency-Key, which net/http reads
// as "may be replayed" and does not send.
func (c *Client) callReplayable(ctx context.Context, tok, method, path string, body, out any) error {
	return c.do(ctx, tok, method, path, body, out, true)
}

func (c *Client) do(ctx context.Context, tok, method, path string, body, out any, replayable bool) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.ConnectTimeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if replayable {
		req.Header["Idempotency-Key"] = []string{}
	}
	c.reportRTT(req, c.tier())
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return serverError(resp)
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxFrame)).Decode(out); err != nil {
		return fmt.Errorf("client: %s %s: bad answer: %w", method, path, err)
	}
	return nil
}

// newToken asks Config.Token for a token and keeps it for HTTP calls.
func (c *Client) newToken(ctx context.Context) (string, error) {
	if c.cfg.Token == nil {
		return "", errors.New("client: Config.Token is not set")
	}
	tok, err := c.cfg.Token(ctx)
	if err != nil {
		return "", fmt.Errorf("client: token: %w", err)
	}
	c.tokMu.Lock()
	c.token = tok
	c.tokMu.Unlock()
	return tok, nil
}

// bearer returns the token for an HTTP call: the latest one, or a new one
// if there is none yet.
func (c *Client) bearer(ctx context.Context) (string, error) {
	c.tokMu.Lock()
	tok := c.token
	c.tokMu.Unlock()
	if tok != "" {
		return tok, nil
	}
	return c.newToken(ctx)
}

// negotiate asks the server what it offers this user now. A server without
// the endpoint offers everything.
func (c *Client) negotiate(ctx context.Context, tok string) (offer, error) {
	o := offer{HeartbeatMS: 15000, PollIntervalMS: 5000}
	err := c.call(ctx, tok, http.MethodGet, "/v1/negotiate", nil, &o)
	var se *ServerError
	if errors.As(err, &se) && se.Status == http.StatusNotFound {
		return offer{Transports: defaultTiers, HeartbeatMS: 15000, PollIntervalMS: 5000}, nil
	}
	if err != nil {
		return offer{}, err
	}
	if o.HeartbeatMS <= 0 {
		o.HeartbeatMS = 15000
	}
	if o.PollIntervalMS <= 0 {
		o.PollIntervalMS = 5000
	}
	return o, nil
}

// bearer returns a header that authenticates a request with tok.
func bearer(tok string) http.Header {
	return http.Header{"Authorization": {"Bearer " + tok}}
}

// subscriptionQuery returns rooms= and, for the rooms with a position,
// since=room:seq,... for an SSE or poll URL; a position of the user's own
// stream goes in since= as "~:seq".
func subscriptionQuery(rooms []string, since map[string]uint64) string {
	q := "rooms=" + url.QueryEscape(strings.Join(rooms, ","))
	if len(since) == 0 {
		return q
	}
	pairs := make([]string, 0, len(since))
	for _, r := range slices.Concat(rooms, []string{protocol.UserRoom}) {
		if p, ok := since[r]; ok {
			pairs = append(pairs, r+":"+strconv.FormatUint(p, 10))
		}
	}
	slices.Sort(pairs)
	return q + "&since=" + url.QueryEscape(strings.Join(pairs, ","))
}

// joinQuery is subscriptionQuery for a WebSocket's dial: rooms= only if
// there are rooms, since the user's position alone may be all it joins.
func joinQuery(rooms []string, since map[string]uint64) string {
	q := subscriptionQuery(rooms, since)
	if len(rooms) == 0 {
		q = strings.TrimPrefix(strings.TrimPrefix(q, "rooms="), "&")
	}
	return q
}
