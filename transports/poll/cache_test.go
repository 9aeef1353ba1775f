package poll

import (
	"bytes"
	"testing"

	"github.com/chatd/chatd/core/protocol"
)

// The control cache answers what protocol.Encode would, for every
// envelope: from the cache for an equal control envelope, afresh for one
// that differs anywhere, control fields or others.
func TestControlCache(t *testing.T) {
	control := func(level int, poll int, features map[string]bool, transports ...string) protocol.Envelope {
		return protocol.Envelope{Type: protocol.TypeControl, Level: protocol.Ptr(level), Transports: transports,
			Features: features, PollIntervalMS: poll}
	}
	on := map[string]bool{"typing": true, "read_receipts": true}
	off := map[string]bool{"typing": false, "read_receipts": true}
	withRoom := control(0, 5000, on, "websocket", "sse", "poll")
	withRoom.Room = "lobby"
	cases := []protocol.Envelope{
		control(0, 5000, on, "websocket", "sse", "poll"),
		control(1, 5000, on, "websocket", "sse", "poll"),
		control(0, 5000, off, "websocket", "sse", "poll"),
		control(0, 5000, on, "sse", "poll"),
		control(0, 2000, on, "websocket", "sse", "poll"),
		{Type: protocol.TypeControl, Transports: []string{"poll"}},
		withRoom,
	}
	var c controlCache
	for round := range 3 { // the first fills the cache, the others read it
		for i, e := range cases {
			got, tag := c.encode(&e)
			if want := protocol.Encode(e); !bytes.Equal(got, want) {
				t.Fatalf("round %d, case %d: %s, want %s", round, i, got, want)
			}
			if tag != protocol.ControlTag(got) || tag == 0 {
				t.Fatalf("round %d, case %d: tag %x, want %x", round, i, tag, protocol.ControlTag(got))
			}
		}
	}
	// A map the caller changes later does not change what is cached.
	m := map[string]bool{"typing": true}
	e := control(2, 5000, m, "poll")
	data, _ := c.encode(&e)
	want := string(data)
	m["typing"] = false
	e2 := control(2, 5000, map[string]bool{"typing": true}, "poll")
	if got, _ := c.encode(&e2); string(got) != want {
		t.Fatalf("after the caller's map changed: %s, want %s", got, want)
	}
}
