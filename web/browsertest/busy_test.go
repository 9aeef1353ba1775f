package browsertest

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// busyProxy stands in front of chatd and passes everything through, until
// the test arms it and drops every connection, as a server that restarts
// or reaches its connection cap would. The next WebSocket upgrade finds the
// server busy: it, and every negotiate, upgrade, event stream and poll
// after it, gets a busy answer (503 unavailable, a reset before any
// answer, 429 too_many_connections, in turn) until the test releases it.
// The page's negotiate and ticket just before that upgrade pass: the
// server became busy between them, the one moment a browser, which sees
// no status when an upgrade is refused, could take it for a blocked tier.
type busyProxy struct {
	*httptest.Server

	mu       sync.Mutex
	conns    map[net.Conn]bool // open client connections, upgraded ones included
	armed    bool              // the next upgrade starts the busy spell
	busy     bool              // answering busy
	answered []string          // the path of every busy answer, in order
	lower    []string          // every SSE or poll request, busy or not
}

// tierPath reports whether path is one the busy spell refuses.
func tierPath(path string) bool {
	switch path {
	case "/v1/negotiate", "/v1/ws", "/v1/sse", "/v1/poll":
		return true
	}
	return false
}

func newBusyProxy(t *testing.T, srv *server) *busyProxy {
	p := &busyProxy{conns: map[net.Conn]bool{}}
	p.Server = startProxy(t, srv, p.serve, func(s *httptest.Server) {
		// httptest forgets upgraded connections; this keeps them, so that
		// drop can end a live WebSocket too.
		s.Config.ConnState = func(c net.Conn, st http.ConnState) {
			p.mu.Lock()
			defer p.mu.Unlock()
			switch st {
			case http.StateNew:
				p.conns[c] = true
			case http.StateClosed:
				delete(p.conns, c)
			}
		}
	})
	t.Cleanup(p.drop) // upgraded connections are not the server's to close
	return p
}

func (p *busyProxy) serve(w http.ResponseWriter, r *http.Request, pass http.Handler) {
	p.mu.Lock()
	if r.URL.Path == "/v1/sse" || r.URL.Path == "/v1/poll" {
		p.lower = append(p.lower, r.URL.Path)
	}
	if p.armed && r.URL.Path == "/v1/ws" {
		p.armed, p.busy = false, true
	}
	refuse := p.busy && tierPath(r.URL.Path)
	n := len(p.answered)
	if refuse {
		p.answered = append(p.answered, r.URL.Path)
	}
	p.mu.Unlock()
	if !refuse {
		pass.ServeHTTP(w, r)
		return
	}
	switch n % 3 {
	case 0:
		busyAnswer(w, http.StatusServiceUnavailable, "unavailable", "the server is restarting")
	case 1:
		reset(w)
	case 2:
		busyAnswer(w, http.StatusTooManyRequests, "too_many_connections", "too many connections")
	}
}

// busyAnswer writes chatd's own busy answer, as its accept loop does.
func busyAnswer(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Retry-After", "1")
	w.Header().Set("Connection", "close")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(`{"type":"error","code":"` + code + `","message":"` + msg + `"}`))
}

// reset ends the connection with a TCP reset and no answer, as a port
// that nothing listens on does.
func reset(w http.ResponseWriter) {
	c, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(err) // an HTTP/1 test server always hijacks
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

// arm makes the next upgrade start the busy spell, and drops every
// connection.
func (p *busyProxy) arm() {
	p.mu.Lock()
	p.armed = true
	p.mu.Unlock()
	p.drop()
}

// drop closes every client connection.
func (p *busyProxy) drop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		_ = c.Close()
		delete(p.conns, c)
	}
}

// release ends the busy spell.
func (p *busyProxy) release() {
	p.mu.Lock()
	p.busy = false
	p.mu.Unlock()
}

// seen returns the paths busy answers went to, and the SSE and poll
// requests seen.
func (p *busyProxy) seen() (answered, lower []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.answered...), append([]string(nil), p.lower...)
}

// waitUntil polls cond until it holds, and fails the test if it does not
// within timeout.
func waitUntil(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		<-time.After(20 * time.Millisecond) // the poll interval, not a wait for an event
	}
}

// TestBusyServerKeepsWebSocket: a busy server must not push the page down
// a tier. The page is on WebSocket when the server becomes busy right
// between its negotiate and its next upgrade (503 unavailable). The page
// cannot see that status, so it asks negotiate, which is refused too (a
// reset, then 429 too_many_connections, then 503 unavailable, each with
// Retry-After): it backs off and tries again, never opening an event
// stream or a poll, and comes back on WebSocket once the server takes
// connections again. Messages sent meanwhile, by others and by the page
// itself, arrive exactly once.
func TestBusyServerKeepsWebSocket(t *testing.T) {
	srv := startServer(t)
	proxy := newBusyProxy(t, srv)
	// A quick backoff keeps the test short; Retry-After (1 s) still holds.
	quick := `window.chatdClientOptions = {backoffBaseMs: 200, backoffCapMs: 1000};`
	alice := newUser(t).open("alice", proxy.URL, tabOptions{preScript: quick})
	alice.login("alice")
	alice.waitConnected("websocket")
	// Every tier the client tries from here on, in order.
	alice.mustEval(`window.__tiers = []; window.chatApp.client.on('state', function (s) {
	  if (s.tier && window.__tiers[window.__tiers.length - 1] !== s.tier) { window.__tiers.push(s.tier); }
	}); true`, nil)
	bob := srv.login(t, "bob")
	bob.send("general", "b1", "before the busy spell")
	alice.waitText("before the busy spell")

	proxy.arm()
	alice.waitJS("the page to see the link down",
		`document.getElementById('conn').getAttribute('data-connected') === 'false'`, 10*time.Second)
	// Sent while the page cannot connect: by bob, straight to the server,
	// and by alice, into her outbox.
	bob.send("general", "b2", "while busy 1")
	alice.send("typed while busy")
	bob.send("general", "b3", "while busy 2")
	alice.waitJS("alice's message to wait as pending", `Array.prototype.some.call(document.querySelectorAll('#messages li.msg[data-state="pending"] .text'),
	  function (n) { return n.textContent === 'typed while busy'; })`, 5*time.Second)
	// Each kind of busy answer, at least once, to the probe and to the
	// cycles after it.
	waitUntil(t, "4 busy answers", 20*time.Second, func() bool {
		answered, _ := proxy.seen()
		return len(answered) >= 4
	})
	proxy.release()

	alice.waitConnected("websocket")
	// Alice's message gets its seq when it reaches the server, after bob's.
	want := []string{"before the busy spell", "while busy 1", "while busy 2", "typed while busy"}
	alice.waitTexts(want)
	alice.sameAsServer(bob, "general")

	answered, lower := proxy.seen()
	if len(lower) != 0 {
		t.Errorf("the page asked for %q while the server was busy: it fell off WebSocket", lower)
	}
	if answered[0] != "/v1/ws" || answered[1] != "/v1/negotiate" {
		t.Errorf("busy answers went to %q; want the upgrade, then the probe (negotiate)", answered)
	}
	for _, p := range answered[1:] {
		if p != "/v1/negotiate" {
			t.Errorf("busy answers went to %q; after the probe only negotiate should be asked", answered)
			break
		}
	}
	var tiers []string
	alice.mustEval(`window.__tiers`, &tiers)
	if strings.Join(tiers, ",") != "websocket" {
		t.Errorf("the client tried the tiers %q; want websocket alone", tiers)
	}
	alice.checkCSP()
}
