package transporttest

import (
	"fmt"
	"testing"

	"github.com/chatd/chatd/core/protocol"
)

func TestChatBothWays(t *testing.T) { Run(t, testChatBothWays) }

func testChatBothWays(t *testing.T, dial Dialer) {
	e := NewEnv(t, Options{})
	alice := dial(t, e, e.Token(t, "alice", Claims{}), []Join{{Room: "general"}})
	bob := dial(t, e, e.Token(t, "bob", Claims{}), []Join{{Room: "general"}})
	ctx := Ctx(t)
	for i := 1; i <= 5; i++ {
		from := alice
		if i%2 == 0 {
			from = bob
		}
		ack, err := from.Send(ctx, "general", fmt.Sprint("m", i), fmt.Sprint("hello ", i))
		if err != nil || ack.Type != protocol.TypeAck || ack.Seq != uint64(i) {
			t.Fatalf("send %d: %+v, %v", i, ack, err)
		}
	}
	for _, c := range []Client{alice, bob} {
		for i := 1; i <= 5; i++ {
			m := nextOf(t, c, protocol.TypeMessage)
			if m.Seq != uint64(i) || m.Text != fmt.Sprint("hello ", i) {
				t.Fatalf("%s got %+v, want seq %d", c.Transport(), m, i)
			}
		}
	}
}

// nextOf returns the next envelope of type typ, skipping presence and
// other ephemeral ones.
func nextOf(t testing.TB, c Client, typ string) protocol.Envelope {
	t.Helper()
	ctx := Ctx(t)
	for {
		e, err := c.Next(ctx)
		if err != nil {
			t.Fatalf("waiting for %s: %v", typ, err)
		}
		if e.Type == typ {
			return e
		}
		switch e.Type {
		case protocol.TypePresence, protocol.TypeTyping, protocol.TypeReceipt:
			continue
		}
		t.Fatalf("waiting for %s, got %+v", typ, e)
	}
}
