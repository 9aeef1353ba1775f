package web

import (
	"os/exec"
	"testing"
)

// TestClientUnit runs the unit tests of static/chat-client.js
// (testdata/client_unit.js) in Node, with a fake clock, fake XHR,
// WebSocket, EventSource and localStorage: backoff bounds, close codes,
// fallback order, a busy server that does not make the client fall (the
// negotiate probe, Retry-After), connect timeouts, heartbeats, dedupe by
// seq, the outbox, tier moves on control envelopes, the level= every poll
// carries, and the read positions restored from GET /v1/rooms/{room}/reads.
func TestClientUnit(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed; the client unit tests need it (apt-get install nodejs)")
	}
	out, err := exec.Command(node, "testdata/client_unit.js").CombinedOutput()
	if err != nil {
		t.Fatalf("client unit tests failed: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}
