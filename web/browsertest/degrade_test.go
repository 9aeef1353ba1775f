package browsertest

import (
	"testing"
	"time"
)

// quickMoves makes the page move up a tier soon after it may, so the test
// need not wait the production delay (1 to 10 s).
const quickMoves = `window.chatdClientOptions = {upgradeDelayMs: [100, 600]};`

// TestDegradationMovesTiers: the page obeys the server's control
// envelopes and close codes. Level 2 turns WebSocket off (the page moves
// to SSE), level 3 turns SSE off (poll), and level 0 invites it back up to
// WebSocket. A message sent on each tier arrives once; nothing is lost or
// duplicated across the moves.
func TestDegradationMovesTiers(t *testing.T) {
	srv := startServer(t)
	admin := srv.loginAdmin(t, "ops")
	alice := newUser(t).open("alice", srv.URL(), tabOptions{preScript: quickMoves})
	bob := srv.login(t, "bob")
	alice.login("alice")
	alice.waitConnected("websocket")
	bob.send("general", "b0", "on websocket")
	alice.waitText("on websocket")

	// The server's mover reaches each session within 10 s.
	admin.setLevel(2)
	alice.waitJS("a move to sse", `document.getElementById('conn').getAttribute('data-tier') === 'sse' &&
	  document.getElementById('conn').getAttribute('data-connected') === 'true'`, 25*time.Second)
	alice.waitJS("level 2 on the indicator", `document.getElementById('conn').getAttribute('data-level') === '2'`, 5*time.Second)
	// Receipts and typing are off from level 1: their UI hides.
	alice.waitJS("receipts and typing hidden", `/\bno-receipts\b/.test(document.body.className) && /\bno-typing\b/.test(document.body.className)`, 5*time.Second)
	bob.send("general", "b1", "on sse")
	alice.send("alice on sse")
	alice.waitText("on sse")
	alice.waitText("alice on sse")

	admin.setLevel(3)
	alice.waitJS("a move to poll", `document.getElementById('conn').getAttribute('data-tier') === 'poll' &&
	  document.getElementById('conn').getAttribute('data-connected') === 'true'`, 25*time.Second)
	bob.send("general", "b2", "on poll")
	alice.send("alice on poll")
	alice.waitText("on poll")
	alice.waitText("alice on poll")

	// A poll client hears of the new level in the next answer; a message
	// makes that answer come now rather than at the end of the hold.
	admin.setLevel(0)
	bob.send("general", "b3", "level 0 again")
	alice.waitJS("a move back up to websocket", `document.getElementById('conn').getAttribute('data-tier') === 'websocket' &&
	  document.getElementById('conn').getAttribute('data-connected') === 'true'`, 40*time.Second)
	alice.waitJS("receipts and typing shown again", `!/\bno-receipts\b|\bno-typing\b/.test(document.body.className)`, 5*time.Second)
	bob.send("general", "b4", "back on websocket")
	alice.waitText("back on websocket")

	alice.waitTexts([]string{"on websocket", "on sse", "alice on sse", "on poll", "alice on poll", "level 0 again", "back on websocket"})
	alice.sameAsServer(bob, "general")
	alice.checkCSP()
}
