package browsertest

import (
	"testing"
)

// TestTwoUsersChat: two people, each in a browser context of their own,
// chat both ways over WebSocket; each sees every message once, in the
// server's order.
func TestTwoUsersChat(t *testing.T) {
	srv := startServer(t)
	alice := newUser(t).open("alice", srv.URL(), tabOptions{})
	bob := newUser(t).open("bob", srv.URL(), tabOptions{})
	alice.login("alice")
	bob.login("bob")
	alice.waitConnected("websocket")
	bob.waitConnected("websocket")

	texts := []string{"hello bob", "hi alice!", "how are you?", "fine, and you?"}
	alice.send(texts[0])
	bob.waitText(texts[0])
	bob.send(texts[1])
	alice.waitText(texts[1])
	alice.send(texts[2])
	bob.waitText(texts[2])
	bob.send(texts[3])
	for _, tb := range []*tab{alice, bob} {
		tb.waitTexts(texts)
	}

	// Chromium lets the server keep its compression context, and both
	// tabs read every message through it without a reconnect.
	if n := srv.metric(t, `chat_ws_deflate_connections_total{context="takeover"}`); n != 2 {
		t.Errorf("%v WebSocket connections deflated with context takeover, want 2 (one a tab)", n)
	}
	if n := srv.metric(t, `chat_connects_total{transport="websocket"}`); n != 2 {
		t.Errorf("%v WebSocket sessions opened, want 2: a tab reconnected", n)
	}

	check := srv.login(t, "checker")
	for _, tb := range []*tab{alice, bob} {
		tb.sameAsServer(check, "general")
		tb.checkCSP()
	}
	// Each message carries its sender: alice's own are marked as hers.
	var mine []string
	alice.mustEval(`Array.prototype.map.call(document.querySelectorAll('#messages li.msg.mine .text'), function (n) { return n.textContent; })`, &mine)
	if len(mine) != 2 || mine[0] != texts[0] || mine[1] != texts[2] {
		t.Errorf("alice's own messages = %q, want %q", mine, []string{texts[0], texts[2]})
	}
}
