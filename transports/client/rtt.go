package client

import (
	"net/http"
	"strconv"
	"time"

	"github.com/chatd/chatd/core/protocol"
)

// The client measures the round trip of each send, from the attempt to
// its ack, and reports the last one to the server once, on what it sends
// next: as rtt_ms on its next WebSocket envelope, or in the X-Chat-RTT
// header ("<tier>=<ms>") of its next HTTP request. The server keeps them
// in chat_client_rtt_seconds, the histogram the round trip alert reads.

// rttHeader is httpx.HeaderRTT; clientHeader is httpx.HeaderClient.
const (
	rttHeader    = "X-Chat-RTT"
	clientHeader = "X-Chat-Client"
)

// noteRTT keeps d as the round trip to report next.
func (c *Client) noteRTT(d time.Duration) {
	c.rtt.Store(max(1, d.Milliseconds()))
}

// takeRTT returns the round trip to report, in milliseconds, and forgets
// it; 0 when there is none.
func (c *Client) takeRTT() int64 { return c.rtt.Swap(0) }

// withRTT puts the round trip to report, if any, on e.
func (c *Client) withRTT(e protocol.Envelope) protocol.Envelope {
	if e.RTTMS == 0 {
		if ms := c.takeRTT(); ms > 0 {
			e.RTTMS = float64(ms)
		}
	}
	return e
}

// reportRTT puts the round trip to report, if any, on req, as measured
// on tier.
func (c *Client) reportRTT(req *http.Request, tier string) {
	if tier == "" {
		return
	}
	if ms := c.takeRTT(); ms > 0 {
		req.Header.Set(rttHeader, tier+"="+strconv.FormatInt(ms, 10))
	}
}

// tier returns the tier of the link in use, or "".
func (c *Client) tier() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.link == nil {
		return ""
	}
	return c.link.tier
}
