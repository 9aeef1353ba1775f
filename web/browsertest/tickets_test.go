package browsertest

import (
	"net/http"
	"testing"
	"time"
)

// TestTicketsUnderThePage: with tickets of two seconds, the page's
// WebSocket proves its token on the socket as its first frame, so it
// writes and outlives its ticket; the page's event stream, which ends
// with each ticket (4013), comes back at once on a new one and loses
// nothing. The rooms a page on SSE follows (restored from the browser's
// storage, chosen) end up in the user's list on the server although the
// stream's joins are not remembered.
func TestTicketsUnderThePage(t *testing.T) {
	srv := startServer(t, "--ticket-ttl", "2s")
	alice := newUser(t).open("alice", srv.URL(), tabOptions{})
	alice.login("alice")
	alice.waitConnected("websocket")
	// Counts the socket's ends and the stream's ends on a ticket.
	const count = `window.__ends = 0; window.__tickets = 0;
	  window.chatApp.client.on('state', function (s) {
	    if (!s.connected && s.status !== 'connected') { window.__ends++; }
	    if (s.reason === 'stream ticket expired') { window.__tickets++; }
	  }); true`
	var ok bool
	alice.mustEval(count, &ok)
	// Bob's browser follows "kept" from an earlier visit (its storage)
	// and reaches the server by SSE alone.
	bob := newUser(t).open("bob", srv.URL(), tabOptions{preScript: `delete window.WebSocket;
	  localStorage.setItem('chatd.rooms.bob', JSON.stringify({rooms: ['general', 'kept'], active: 'general'}));`})
	bob.login("bob")
	bob.waitConnected("sse")
	bob.mustEval(count, &ok)
	// Its event stream, opened with a ticket, joins them without listing
	// them; the page finds them missing from the server's list and asks.
	bobAPI := srv.login(t, "bob")
	waitListed(t, bobAPI, "general", "kept")

	texts := []string{"before the tickets end", "while they end", "after two of them"}
	alice.send(texts[0])
	bob.waitText(texts[0])
	// Bob's stream ends with its ticket, then with the next one: by then
	// alice's ticket, taken before bob's first, has long expired.
	bob.waitJS("the event stream ending with its ticket", `window.__tickets >= 1`, 20*time.Second)
	bob.send(texts[1])
	alice.waitText(texts[1])
	bob.waitJS("the event stream ending with its second ticket", `window.__tickets >= 2`, 20*time.Second)
	alice.send(texts[2])
	check := srv.login(t, "checker")
	for _, tb := range []*tab{alice, bob} {
		tb.waitTexts(texts)
		tb.sameAsServer(check, "general")
	}
	alice.waitConnected("websocket")
	var ends int
	alice.mustEval(`window.__ends`, &ends)
	if ends != 0 {
		t.Fatalf("alice's socket ended %d times: a socket refreshed with its token outlives its ticket", ends)
	}
	if n := srv.metric(t, `chat_disconnects_total{code="4013",reason="ticket expired",transport="websocket"}`); n > 0 {
		t.Fatalf("%v WebSocket sessions ended on their tickets", n)
	}

	// A room bob joins on his event stream, whose joins a ticket makes
	// unremembered, is in his room list on the server all the same: the
	// page asked for it (POST /v1/join).
	bob.joinRoom("sse-room")
	waitListed(t, bobAPI, "sse-room")
}

// waitListed waits until the room list of api's user holds every one of
// rooms.
func waitListed(t *testing.T, api *api, rooms ...string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var list struct{ Rooms []struct{ Room string } }
		api.do(http.MethodGet, "/v1/rooms", nil, &list)
		have := map[string]bool{}
		for _, r := range list.Rooms {
			have[r.Room] = true
		}
		missing := ""
		for _, r := range rooms {
			if !have[r] {
				missing = r
			}
		}
		if missing == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the rooms on the server: %+v, want %s among them", list.Rooms, missing)
		}
	}
}
