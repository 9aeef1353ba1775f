package client

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/chatd/chatd/core/protocol"
)

// Send sends text to room under a new random id and returns the ack,
// which carries the message's seq. See SendID.
func (c *Client) Send(ctx context.Context, room, text string) (protocol.Envelope, error) {
	return c.SendID(ctx, room, NewID(), text)
}

// SendID sends text to room under id and waits for the ack. Sending does
// not need a join.
//
// It retries with the same id until the message is acked, across
// reconnects and tier moves; the server stores a (room, id) once, so a
// retry never duplicates. It goes as a send frame over a live WebSocket,
// and as POST /v1/send otherwise. Network errors, lost connections,
// 5xx, overloaded, unavailable and rate_limited are retried with
// backoff (Retry-After is honoured, up to BackoffMax); unauthorized and
// token_expired are retried once with a new token. Other failures
// (bad_request, forbidden, too_large, ...) return at once as a
// *ServerError, or a *protocol.Error if the envelope is invalid before it
// is sent. It returns ctx's error when ctx ends first.
func (c *Client) SendID(ctx context.Context, room, id, text string) (protocol.Envelope, error) {
	return c.retried(ctx, protocol.Envelope{Type: protocol.TypeSend, Room: room, ID: id, Text: text})
}

// retried sends e, a send, edit or delete whose id makes it idempotent,
// and retries it until it is acked; see SendID.
func (c *Client) retried(ctx context.Context, e protocol.Envelope) (protocol.Envelope, error) {
	if err := protocol.ValidateClient(&e); err != nil {
		return protocol.Envelope{}, err
	}
	refreshed := false
	for attempt := 0; ; attempt++ {
		ack, err := c.sendOnce(ctx, e)
		if err == nil {
			return ack, nil
		}
		if ctx.Err() != nil {
			return protocol.Envelope{}, ctx.Err()
		}
		if isUnauthorized(err) && !refreshed {
			refreshed = true
			if _, err := c.newToken(ctx); err != nil {
				return protocol.Envelope{}, err
			}
			continue
		}
		ok, wait := retryable(err)
		if !ok {
			return protocol.Envelope{}, err
		}
		if wait <= 0 {
			wait = c.backoff(attempt)
		}
		c.cfg.Logger.Debug("chat client: retry", "type", e.Type, "id", e.ID, "in", wait, "err", err)
		if err := sleep(ctx, min(wait, c.cfg.BackoffMax)); err != nil {
			return protocol.Envelope{}, err
		}
	}
}

// sendOnce makes one attempt at a send. An acked attempt's round trip is
// the next one the client reports (see rtt.go).
func (c *Client) sendOnce(ctx context.Context, e protocol.Envelope) (protocol.Envelope, error) {
	start := time.Now()
	if l := c.liveWS(); l != nil {
		ctx, cancel := context.WithTimeout(ctx, c.cfg.ConnectTimeout)
		defer cancel()
		ack, err := l.request(ctx, e, e.ID)
		if err == nil {
			c.noteRTT(time.Since(start))
		}
		return ack, err
	}
	tok, err := c.bearer(ctx)
	if err != nil {
		return protocol.Envelope{}, err
	}
	var ack protocol.Envelope
	path, body := httpTwin(e)
	if err := c.callReplayable(ctx, tok, http.MethodPost, path, body, &ack); err != nil {
		return protocol.Envelope{}, err
	}
	c.noteRTT(time.Since(start))
	return ack, nil
}

// Read records that the user has read room up to seq. It goes over a live
// WebSocket, or as POST /v1/read. It is not retried, apart from once with
// a new token after unauthorized.
func (c *Client) Read(ctx context.Context, room string, seq uint64) error {
	return c.once(ctx, protocol.Envelope{Type: protocol.TypeRead, Room: room, Seq: seq}, false, "/v1/read",
		map[string]any{"room": room, "seq": seq})
}

// ReadNoAck is Read as the browser client sends it: over a live
// WebSocket the read frame carries no ref, so the server answers only a
// failure, which arrives on Events, and ReadNoAck returns once the frame
// is written. It saves the server a reply and the caller a round trip.
// Without a live WebSocket it is Read (POST /v1/read answers every call).
func (c *Client) ReadNoAck(ctx context.Context, room string, seq uint64) error {
	return c.once(ctx, protocol.Envelope{Type: protocol.TypeRead, Room: room, Seq: seq}, true, "/v1/read",
		map[string]any{"room": room, "seq": seq})
}

// Typing tells the room that the user is typing. Over a WebSocket the
// server answers only failures, which arrive on Events.
func (c *Client) Typing(ctx context.Context, room string) error {
	return c.once(ctx, protocol.Envelope{Type: protocol.TypeTyping, Room: room}, true, "/v1/typing",
		map[string]any{"room": room})
}

// once makes a request that is not retried: over a live WebSocket, or by
// POST to path (which net/http may write again on a new connection if
// the kept-alive one was closed under it: see callReplayable). Over a WebSocket, noAck sends e without a ref and returns
// once it is written (failures arrive on Events); otherwise it waits for
// the answer.
func (c *Client) once(ctx context.Context, e protocol.Envelope, noAck bool, path string, body any) error {
	if err := protocol.ValidateClient(&e); err != nil {
		return err
	}
	if l := c.liveWS(); l != nil {
		if noAck {
			return l.write(e)
		}
		ctx, cancel := context.WithTimeout(ctx, c.cfg.ConnectTimeout)
		defer cancel()
		ref := "r-" + strconv.FormatUint(l.refs.Add(1), 10)
		e.Ref = ref
		_, err := l.request(ctx, e, ref)
		return err
	}
	for refreshed := false; ; refreshed = true {
		tok, err := c.bearer(ctx)
		if err != nil {
			return err
		}
		err = c.callReplayable(ctx, tok, http.MethodPost, path, body, nil)
		if !isUnauthorized(err) || refreshed {
			return err
		}
		if _, err := c.newToken(ctx); err != nil {
			return err
		}
	}
}

// liveWS returns the current link if it is a WebSocket ready to write.
func (c *Client) liveWS() *link {
	c.mu.Lock()
	defer c.mu.Unlock()
	if l := c.link; l != nil && l.tier == WebSocket && l.subscribed && l.ctx.Err() == nil {
		return l
	}
	return nil
}

// NewID returns a random message id (a version 4 UUID).
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails: see crypto/rand.Read
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
