package client

import (
	"net/http"
	"sync"
	"testing"
)

// countingTransport counts the requests made through it, by path.
type countingTransport struct {
	next http.RoundTripper
	mu   sync.Mutex
	n    map[string]int
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.n[r.URL.Path]++
	c.mu.Unlock()
	return c.next.RoundTrip(r)
}

func (c *countingTransport) count(path string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[path]
}

// TestNegotiatedTicket: the ticket negotiate gives with the offer opens
// each tier's stream; the client asks POST /v1/ticket for none of them.
func TestNegotiatedTicket(t *testing.T) {
	for _, tier := range []string{WebSocket, SSE, Poll} {
		t.Run(tier, func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, serverOptions{})
			ct := &countingTransport{next: srv.http.Transport, n: map[string]int{}}
			cfg := testConfig(t, srv.URL, "alice", []string{tier}, "lobby")
			cfg.HTTPClient = &http.Client{Transport: ct}
			c := start(t, cfg)
			waitState(t, c, tier+" connected", connectedOn(tier))
			if _, err := c.Send(stepCtx(t), "lobby", "hello"); err != nil {
				t.Fatal(err)
			}
			recvMessages(t, c, 1)
			if n := ct.count("/v1/negotiate"); n != 1 {
				t.Errorf("%d negotiates, want 1", n)
			}
			if n := ct.count("/v1/ticket"); n != 0 {
				t.Errorf("%d POST /v1/ticket, want none: negotiate gave one", n)
			}
		})
	}
}
