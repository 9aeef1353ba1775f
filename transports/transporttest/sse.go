package transporttest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
)

// sseClient is a raw Client over Server-Sent Events: one stream at a time,
// reconnected with the last event id as cursor when the room set changes.
type sseClient struct{ *streamer }

// DialSSE opens a stream for joins and waits for each joined.
func DialSSE(t testing.TB, e *Env, token string, joins []Join) Client {
	t.Helper()
	c := &sseClient{newStreamer(e, token, "sse", joins)}
	c.dial(t, joins, c.run)
	return c
}

// run keeps one stream open at a time until Close. A stream ended by the
// server (not by a room change) ends the client, with the close code the
// server's disconnect envelope gave.
func (c *sseClient) run(ctx context.Context) {
	for ctx.Err() == nil {
		q, ok := c.query()
		if !ok {
			c.waitForRooms(ctx)
			continue
		}
		streamCtx, stop := context.WithCancel(ctx)
		var restarted atomic.Bool
		c.mu.Lock()
		c.restart = func() { restarted.Store(true); stop() }
		c.mu.Unlock()
		code, err := c.stream(streamCtx, q)
		c.mu.Lock()
		again := restarted.Load()
		c.restart = nil
		c.mu.Unlock()
		stop()
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, errRefusedJoin) {
			continue // the refused room is dropped; stream the rest
		}
		if !again {
			if err != nil && code == 0 {
				code = 1006
			}
			c.closed <- code
			return
		}
	}
}

// stream reads one event stream until it ends. It returns the close code
// of the disconnect envelope, if one came.
func (c *sseClient) stream(ctx context.Context, q map[string][]string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.env.URL+"/v1/sse?"+encode(q), nil)
	if err != nil {
		return 0, err
	}
	req.Header = c.headers()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(resp.Body)
		if c.refused(raw) {
			return 0, errRefusedJoin
		}
		return 0, fmt.Errorf("sse: HTTP %d", resp.StatusCode)
	}
	code := 0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	var data, id string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if data != "" {
				if err := c.deliverEnvelope([]byte(data)); err != nil {
					return code, err
				}
				if strings.Contains(data, `"type":"disconnect"`) {
					code = disconnectCode(data)
				}
				c.setCursor(id)
			}
			data, id = "", ""
		case strings.HasPrefix(line, "data:"):
			data += strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " ")
		case strings.HasPrefix(line, "id:"):
			id = strings.TrimPrefix(strings.TrimPrefix(line, "id:"), " ")
		}
	}
	return code, sc.Err()
}

var errRefusedJoin = errors.New("the server refused a join")
