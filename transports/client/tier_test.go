package client

import (
	"strings"
	"testing"

	"github.com/chatd/chatd/core/protocol"
)

// TestSingleTier joins, sends 20 messages and receives each exactly once,
// in order, over each tier alone; acks carry the seq.
func TestSingleTier(t *testing.T) {
	for _, tier := range []string{WebSocket, SSE, Poll} {
		t.Run(tier, func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, serverOptions{})
			c := start(t, testConfig(t, srv.URL, "alice", []string{tier}, "lobby"))
			waitState(t, c, tier+" connected", connectedOn(tier))
			ctx := stepCtx(t)
			for i := uint64(1); i <= 20; i++ {
				ack, err := c.Send(ctx, "lobby", text(i))
				if err != nil {
					t.Fatalf("send %d: %v", i, err)
				}
				if ack.Seq != i || ack.Room != "lobby" || ack.ID == "" {
					t.Fatalf("send %d: ack %+v", i, ack)
				}
			}
			wantSeqs(t, recvMessages(t, c, 20), "lobby", 1, text)
			wantNoMore(t, srv, c, "lobby")

			// Failures that no retry fixes return at once.
			if _, err := c.Send(ctx, "lobby", strings.Repeat("x", 5000)); codeOf(err) != protocol.CodeTooLarge {
				t.Fatalf("oversized send: %v, want too_large", err)
			}
			if err := c.Read(ctx, "lobby", 21); err != nil {
				t.Fatalf("read: %v", err)
			}
			if err := c.Read(ctx, "lobby", 999); codeOf(err) != protocol.CodeBadRequest {
				t.Fatalf("read past the head: %v, want bad_request", err)
			}
			if err := c.Typing(ctx, "lobby"); err != nil {
				t.Fatalf("typing: %v", err)
			}
			if s := c.State(); s.Transport != tier || !s.Connected {
				t.Fatalf("state %+v, want connected on %s", s, tier)
			}
		})
	}
}
