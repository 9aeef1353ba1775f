package transporttest

import (
	"fmt"
	"testing"

	"github.com/chatd/chatd/core/protocol"
)

// canary is one user per transport chatting in room "canary" while an
// attack runs: each message, sent over each transport in turn, must reach
// all three, in order, before the next is sent.
type canary struct {
	t       testing.TB
	clients []Client
	seq     uint64
}

func newCanary(t testing.TB, e *Env) *canary {
	t.Helper()
	c := &canary{t: t}
	for _, name := range []string{"websocket", "sse", "poll"} {
		c.clients = append(c.clients, Transports[name](t, e, e.Token(t, "canary-"+name, Claims{}), []Join{{Room: "canary"}}))
	}
	return c
}

// chatUntil chats until done is closed, and at least one round over every
// transport; it returns how many messages went round.
func (c *canary) chatUntil(done <-chan struct{}) int {
	c.t.Helper()
	sent := 0
	for {
		c.seq++
		from := c.clients[int(c.seq)%len(c.clients)]
		ack, err := from.Send(Ctx(c.t), "canary", fmt.Sprint("c", c.seq), "still here")
		if err != nil || ack.Type != protocol.TypeAck || ack.Seq != c.seq {
			c.t.Fatalf("canary %s send %d: %+v, %v", from.Transport(), c.seq, ack, err)
		}
		for _, cl := range c.clients {
			expectSeqs(c.t, cl, "canary", c.seq, c.seq)
		}
		sent++
		select {
		case <-done:
			if sent >= len(c.clients) {
				return sent
			}
		default:
		}
	}
}
