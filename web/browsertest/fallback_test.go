package browsertest

import (
	"net/http"
	"strings"
	"testing"
)

// legacyScript removes what old browsers lack, before the page runs.
const legacyScript = `delete window.WebSocket; delete window.EventSource; delete window.BroadcastChannel; delete window.DecompressionStream;`

// TestLegacyBrowserPolls: with no WebSocket, EventSource or
// BroadcastChannel, the page still chats, over long-polling.
func TestLegacyBrowserPolls(t *testing.T) {
	srv := startServer(t)
	alice := newUser(t).open("alice", srv.URL(), tabOptions{preScript: legacyScript})
	bob := newUser(t).open("bob", srv.URL(), tabOptions{preScript: legacyScript})
	var gone bool
	alice.mustEval(`typeof window.WebSocket === 'undefined' && typeof window.EventSource === 'undefined'`, &gone)
	if !gone {
		t.Fatal("the legacy script did not remove WebSocket and EventSource")
	}
	alice.login("alice")
	bob.login("bob")
	alice.waitConnected("poll")
	bob.waitConnected("poll")

	texts := []string{"polling works", "both ways", "and back again"}
	alice.send(texts[0])
	bob.waitText(texts[0])
	bob.send(texts[1])
	alice.waitText(texts[1])
	alice.send(texts[2])
	check := srv.login(t, "checker")
	for _, tb := range []*tab{alice, bob} {
		tb.waitTexts(texts)
		tb.sameAsServer(check, "general")
		// Plain words for the person; the tier is in the tooltip.
		var label, title string
		tb.mustEval(`document.getElementById('conn-text').textContent`, &label)
		tb.mustEval(`document.getElementById('conn').title`, &title)
		if label != "Connected (compatibility mode)" || !strings.Contains(title, "poll") {
			t.Errorf("%s: the indicator says %q (tooltip %q), want compatibility mode with the poll tier in the tooltip", tb.name, label, title)
		}
		tb.checkCSP()
	}
	for _, stream := range []string{"new", "goes_on"} {
		if n := srv.metric(t, `chat_poll_deflated_answers_total{stream="`+stream+`"}`); n != 0 {
			t.Errorf("%v deflated answers (%s) to pages that cannot inflate", n, stream)
		}
	}
}

// TestModernBrowserPollsDeflated: a browser that polls (no WebSocket or
// EventSource here) but has DecompressionStream asks for deflated
// answers, and chats over them: the server's answers go on with the
// stream of the one before, and the page asks deflate=1 after each.
func TestModernBrowserPollsDeflated(t *testing.T) {
	srv := startServer(t)
	const polling = `delete window.WebSocket; delete window.EventSource;`
	alice := newUser(t).open("alice", srv.URL(), tabOptions{preScript: polling})
	bob := newUser(t).open("bob", srv.URL(), tabOptions{preScript: polling})
	alice.login("alice")
	bob.login("bob")
	alice.waitConnected("poll")
	bob.waitConnected("poll")
	texts := []string{"deflated polls", "one stream, answer after answer", "each smaller for the last", "and still in order"}
	for i, text := range texts {
		from, to := alice, bob
		if i%2 == 1 {
			from, to = bob, alice
		}
		from.send(text)
		to.waitText(text)
	}
	check := srv.login(t, "checker")
	for _, tb := range []*tab{alice, bob} {
		tb.waitTexts(texts)
		tb.sameAsServer(check, "general")
		var asked bool
		tb.mustEval(`performance.getEntriesByType('resource').some(function (e) { return /\/v1\/poll\?.*deflate=1/.test(e.name); })`, &asked)
		if !asked {
			t.Errorf("%s: no poll went on with a deflate stream (deflate=1)", tb.name)
		}
	}
	if n := srv.metric(t, `chat_poll_deflated_answers_total{stream="goes_on"}`); n < 1 {
		t.Errorf("%v answers went on with a deflate stream, want some", n)
	}
}

// TestWebSocketRefusedUsesSSE: behind a proxy that refuses WebSocket
// upgrades (403), the page falls back to Server-Sent Events and chats.
func TestWebSocketRefusedUsesSSE(t *testing.T) {
	srv := startServer(t)
	upgrades := make(chan struct{}, 100)
	proxy := startProxy(t, srv, func(w http.ResponseWriter, r *http.Request, pass http.Handler) {
		if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			select {
			case upgrades <- struct{}{}:
			default:
			}
			http.Error(w, "websockets are not allowed here", http.StatusForbidden)
			return
		}
		pass.ServeHTTP(w, r)
	}, nil)

	alice := newUser(t).open("alice", proxy.URL, tabOptions{})
	bob := newUser(t).open("bob", proxy.URL, tabOptions{})
	alice.login("alice")
	bob.login("bob")
	alice.waitConnected("sse")
	bob.waitConnected("sse")
	if len(upgrades) == 0 {
		t.Error("the pages never tried WebSocket first")
	}

	texts := []string{"no websockets here", "sse it is", "works fine"}
	alice.send(texts[0])
	bob.waitText(texts[0])
	bob.send(texts[1])
	alice.waitText(texts[1])
	alice.send(texts[2])
	check := srv.login(t, "checker")
	for _, tb := range []*tab{alice, bob} {
		tb.waitTexts(texts)
		tb.sameAsServer(check, "general")
		tb.waitConnected("sse")
		tb.checkCSP()
	}
}
