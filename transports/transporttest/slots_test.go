package transporttest

import (
	"strings"
	"testing"

	"github.com/chatd/chatd/core/protocol"
)

// The session writers that write at once are bounded
// (core.Config.WritersRunning), and a writer keeps its slot through its
// write only while the client's socket takes the bytes. Here there is one
// slot, and a WebSocket client and an SSE stream stop reading until
// their sockets are full and both writers wait on them (each such wait
// is counted). A client on any transport then still gets every message,
// and the two stalled sessions are still open when it has: had a stalled
// writer kept the slot, nothing would have been written to anyone until
// its write timed out and its session was closed as slow.
func TestStalledWritersKeepNoSlot(t *testing.T) { Run(t, testStalledWritersKeepNoSlot) }

func testStalledWritersKeepNoSlot(t *testing.T, dial Dialer) {
	const room = "firehose"
	cfg := fast
	cfg.WritersRunning = 1
	cfg.QueueFrames, cfg.QueueBytes = 1<<20, 1<<30 // the stalled sessions are not closed for their queues
	e := NewEnv(t, Options{Hub: cfg})

	ws := dialRaw(t, e, e.Token(t, "ws-sloth", Claims{}), tinyReadBuffer)
	ws.send(protocol.Envelope{Type: protocol.TypeJoin, Room: room, Since: ptr(0), Ref: "j"})
	ws.until("joined", func(env protocol.Envelope) bool { return env.Type == protocol.TypeJoined && env.Ref == "j" }, nil)
	sse := swOpen(t, tinyReadClient(t), e.URL, e.Token(t, "sse-sloth", Claims{}), "rooms="+room, "", false)
	sse.untilJoined(t, room)
	reader := dial(t, e, e.Token(t, "reader", Claims{}), nil)
	join(t, reader, room, ptr(0))

	// Publish, the reader reading as it goes and the other two not at
	// all, until both stalled writers wait on their clients.
	before := e.Hub.Stats()
	text := strings.Repeat("x", 4000)
	sent := 0
	for e.Hub.Stats().BlockedWrites < before.BlockedWrites+2 {
		if sent >= 20000 {
			t.Fatalf("sent %d messages of %d bytes and %d writers wait on their clients, want 2", sent, len(text), e.Hub.Stats().BlockedWrites-before.BlockedWrites)
		}
		fill(t, e, room, 8, text)
		expectSeqs(t, reader, room, uint64(sent+1), uint64(sent+8))
		sent += 8
	}

	// Both wait in their writes; the reader gets what follows.
	fill(t, e, room, 32, text)
	expectSeqs(t, reader, room, uint64(sent+1), uint64(sent+32))
	sent += 32
	after := e.Hub.Stats()
	if after.SlowClosed != before.SlowClosed || after.WriteFailed != before.WriteFailed {
		t.Fatalf("sessions closed while the reader read: slow %d, failed writes %d; want none", after.SlowClosed-before.SlowClosed, after.WriteFailed-before.WriteFailed)
	}
	if n := e.Hub.Sessions(); n[wsName] < 1 || n["sse"] < 1 {
		t.Fatalf("sessions open: %v; want the stalled WebSocket and SSE ones", n)
	}
	t.Logf("both writers waited on their clients after %d messages", sent)
	fence(t, e, room, reader)
}
