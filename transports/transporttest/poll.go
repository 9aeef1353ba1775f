package transporttest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/chatd/chatd/core/protocol"
)

// pollClient is a raw Client over long-polling: one request at a time,
// each carrying the cursor of the last answer.
type pollClient struct{ *streamer }

// DialPoll starts polling for joins and waits for each joined.
func DialPoll(t testing.TB, e *Env, token string, joins []Join) Client {
	t.Helper()
	c := &pollClient{newStreamer(e, token, "poll", joins)}
	c.dial(t, joins, c.run)
	return c
}

func (c *pollClient) run(ctx context.Context) {
	for ctx.Err() == nil {
		q, ok := c.query()
		if !ok {
			c.waitForRooms(ctx)
			continue
		}
		pollCtx, stop := context.WithCancel(ctx)
		c.mu.Lock()
		c.restart = stop
		c.mu.Unlock()
		code, err := c.poll(pollCtx, q)
		stop()
		c.mu.Lock()
		c.restart = nil
		c.mu.Unlock()
		if ctx.Err() != nil {
			return
		}
		if code != 0 {
			c.closed <- code
			return
		}
		if err != nil && pollCtx.Err() == nil {
			// A refused poll is reported, then the client waits a little,
			// as a real one would, rather than spinning.
			select {
			case <-time.After(50 * time.Millisecond):
			case <-ctx.Done():
			}
		}
	}
}

// poll makes one request. A disconnect envelope in the answer returns its
// close code.
func (c *pollClient) poll(ctx context.Context, q url.Values) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.env.URL+"/v1/poll?"+q.Encode(), nil)
	if err != nil {
		return 0, err
	}
	req.Header = c.headers()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		if c.refused(raw) {
			return 0, nil // the refused room is dropped; poll the rest
		}
		return 0, fmt.Errorf("poll: HTTP %d", resp.StatusCode)
	}
	var answer struct {
		Events []json.RawMessage `json:"events"`
		Cursor string            `json:"cursor"`
	}
	if err := json.Unmarshal(raw, &answer); err != nil {
		return 0, fmt.Errorf("poll answer %q: %w", raw, err)
	}
	code := 0
	for _, ev := range answer.Events {
		if err := c.deliverEnvelope(ev); err != nil {
			return 0, err
		}
		if code == 0 {
			code = disconnectCode(string(ev))
		}
	}
	c.setCursor(answer.Cursor)
	return code, nil
}

// disconnectCode returns the close code of a disconnect envelope, else 0.
func disconnectCode(data string) int {
	var e protocol.Envelope
	if json.Unmarshal([]byte(data), &e) != nil || e.Type != protocol.TypeDisconnect {
		return 0
	}
	return e.CloseCode
}

func encode(q map[string][]string) string { return url.Values(q).Encode() }
