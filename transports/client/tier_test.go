package client

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/protocol"
)

// TestSingleTier joins, sends 20 messages and receives each exactly once,
// in order, over each tier alone; acks carry the seq; reads are stored
// and refused as they should be, with and without an ack.
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
			readNoAck(t, c, tier)
			if s := c.State(); s.Transport != tier || !s.Connected {
				t.Fatalf("state %+v, want connected on %s", s, tier)
			}
		})
	}
}

// readNoAck reads as the browser does (ReadNoAck) in c's room lobby, up
// to a message it sends: the position is stored and its receipt comes
// back to the room, the reader included; a bad position comes back as an
// error, on Events over a WebSocket (the frame has no ref, so nothing else
// answers it) and from the call otherwise.
func readNoAck(t *testing.T, c *Client, tier string) {
	t.Helper()
	ctx := stepCtx(t)
	ack, err := c.Send(ctx, "lobby", "read me")
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	recvMessages(t, c, 1)
	if err := c.ReadNoAck(ctx, "lobby", ack.Seq); err != nil {
		t.Fatalf("read: %v", err)
	}
	waitEvent(t, c, fmt.Sprintf("alice's receipt at %d", ack.Seq), func(e protocol.Envelope) bool {
		return e.Type == protocol.TypeReceipt && e.Room == "lobby" &&
			(e.User == "alice" && e.Seq == ack.Seq || e.Reads["alice"] == ack.Seq)
	})
	err = c.ReadNoAck(ctx, "lobby", 999)
	if tier != WebSocket {
		if codeOf(err) != protocol.CodeBadRequest {
			t.Fatalf("read past the head: %v, want bad_request", err)
		}
		return
	}
	if err != nil {
		t.Fatalf("read past the head over a WebSocket: %v, want nil (the answer is an event)", err)
	}
	waitEvent(t, c, "bad_request for the read", func(e protocol.Envelope) bool {
		return e.Type == protocol.TypeError && e.Code == string(protocol.CodeBadRequest) && e.Ref == ""
	})
}

// waitEvent reads c's events until one satisfies ok.
func waitEvent(t testing.TB, c *Client, what string, ok func(protocol.Envelope) bool) protocol.Envelope {
	t.Helper()
	ctx := stepCtx(t)
	for {
		select {
		case e, open := <-c.Events():
			if !open {
				t.Fatalf("events closed before %s", what)
			}
			if ok(e) {
				return e
			}
		case <-ctx.Done():
			t.Fatalf("no %s; state %+v", what, c.State())
		}
	}
}

// TestCountReads: a client with Config.CountReads gets a batched receipt
// with the number of read positions in Count and no Reads, over each
// tier, while a client without it in the same room gets the positions.
// Both read before one flush, so that their positions go out in one
// receipt (one reader's goes out in the plain form, user and seq).
func TestCountReads(t *testing.T) {
	for _, tier := range []string{WebSocket, SSE, Poll} {
		t.Run(tier, func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, serverOptions{hub: core.Config{ReadFlush: time.Hour}}) // flushed by the test
			alice := start(t, testConfig(t, srv.URL, "alice", []string{tier}, "lobby"))
			cfg := testConfig(t, srv.URL, "bob", []string{tier}, "lobby")
			cfg.CountReads = true
			bob := start(t, cfg)
			waitState(t, alice, tier+" connected", connectedOn(tier))
			waitState(t, bob, tier+" connected", connectedOn(tier))
			ctx := stepCtx(t)
			ack, err := alice.Send(ctx, "lobby", "read me")
			if err != nil {
				t.Fatalf("send: %v", err)
			}
			recvMessages(t, alice, 1)
			recvMessages(t, bob, 1)
			for _, c := range []*Client{alice, bob} {
				if err := c.Read(ctx, "lobby", ack.Seq); err != nil {
					t.Fatalf("read: %v", err)
				}
			}
			srv.Hub.FlushReads(ctx)
			isReceipt := func(e protocol.Envelope) bool { return e.Type == protocol.TypeReceipt && e.Room == "lobby" }
			got := waitEvent(t, bob, "the receipt, counted", isReceipt)
			if got.Reads != nil || got.User != "" || got.Count == nil || *got.Count != 2 {
				t.Fatalf("bob's receipt %+v, want Count 2 and no positions", got)
			}
			got = waitEvent(t, alice, "the receipt", isReceipt)
			if len(got.Reads) != 2 || got.Reads["alice"] != ack.Seq || got.Reads["bob"] != ack.Seq || got.Count != nil {
				t.Fatalf("alice's receipt %+v, want alice and bob at %d", got, ack.Seq)
			}
		})
	}
}

// TestCountChanges: a client with Config.CountChanges gets a batched
// presence envelope's changes blank, as many as came, over each tier,
// while a client without it in the same room gets them whole. Presence
// waits for the test's flush, so that the four joins go out in one
// batch (one change alone goes out in the plain form, user and online);
// a message first puts every poll client in step.
func TestCountChanges(t *testing.T) {
	for _, tier := range []string{WebSocket, SSE, Poll} {
		t.Run(tier, func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, serverOptions{hub: core.Config{PresenceInterval: time.Hour}}) // flushed by the test
			cfg := testConfig(t, srv.URL, "alice", []string{tier}, "lobby")
			cfg.CountChanges = true
			alice := start(t, cfg)
			var others []*Client
			for _, u := range []string{"bob", "carol", "dave"} {
				others = append(others, start(t, testConfig(t, srv.URL, u, []string{tier}, "lobby")))
			}
			all := append([]*Client{alice}, others...)
			for _, c := range all {
				waitState(t, c, tier+" connected", connectedOn(tier))
			}
			// A message each, so that every poll client is in step (a
			// kept session between its polls) when presence goes out.
			if _, err := others[0].Send(stepCtx(t), "lobby", "hello"); err != nil {
				t.Fatalf("send: %v", err)
			}
			for _, c := range all {
				recvMessages(t, c, 1)
			}
			srv.Hub.FlushPresence()
			batched := func(e protocol.Envelope) bool {
				return e.Type == protocol.TypePresence && e.Room == "lobby" && len(e.Changes) >= 2
			}
			got := waitEvent(t, alice, "the presence batch, counted", batched)
			for _, c := range got.Changes {
				if c != (protocol.PresenceChange{}) {
					t.Fatalf("alice's presence %+v, want its changes blank", got)
				}
			}
			got = waitEvent(t, others[0], "the presence batch", batched)
			if !slices.ContainsFunc(got.Changes, func(c protocol.PresenceChange) bool { return c.User == "dave" && c.Online }) {
				t.Fatalf("bob's presence %+v, want dave online among the changes", got)
			}
		})
	}
}

// TestDeliver: a client with Config.Deliver gets every envelope there,
// in order, over each tier: its joined, then each message once; nothing
// comes on its Events channel, which closes when Run returns.
func TestDeliver(t *testing.T) {
	const n = 20
	for _, tier := range []string{WebSocket, SSE, Poll} {
		t.Run(tier, func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, serverOptions{})
			alice := start(t, testConfig(t, srv.URL, "alice", []string{tier}, "lobby"))
			got := make(chan protocol.Envelope, 4*n)
			cfg := testConfig(t, srv.URL, "bob", []string{tier}, "lobby")
			cfg.Deliver = func(batch []protocol.Envelope) {
				for _, e := range batch {
					got <- e
				}
				clear(batch) // the client reuses the array: what was sent is a copy
			}
			bob := New(cfg)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- bob.Run(ctx) }()
			ended := false
			defer func() {
				cancel()
				if !ended {
					<-done
				}
			}()
			waitState(t, alice, tier+" connected", connectedOn(tier))
			step := stepCtx(t)
			next := func(what string) protocol.Envelope {
				t.Helper()
				for {
					select {
					case e := <-got:
						if e.Type == protocol.TypeMessage || e.Type == protocol.TypeJoined {
							return e
						}
					case <-step.Done():
						t.Fatalf("no %s; bob's state %+v", what, bob.State())
					}
				}
			}
			if e := next("joined"); e.Type != protocol.TypeJoined || e.Room != "lobby" {
				t.Fatalf("first envelope %+v, want lobby's joined", e)
			}
			var msgs []protocol.Envelope
			for i := range n {
				if _, err := alice.Send(step, "lobby", fmt.Sprintf("m%d", i+1)); err != nil {
					t.Fatalf("send %d: %v", i+1, err)
				}
			}
			for len(msgs) < n {
				msgs = append(msgs, next(fmt.Sprintf("message %d", len(msgs)+1)))
			}
			wantSeqs(t, msgs, "lobby", 1, func(seq uint64) string { return fmt.Sprintf("m%d", seq) })
			select {
			case e := <-bob.Events():
				t.Fatalf("an envelope on Events with Deliver set: %+v", e)
			default:
			}
			cancel()
			err := <-done
			ended = true
			if err != context.Canceled {
				t.Fatalf("Run returned %v, want context.Canceled", err)
			}
			if e, open := <-bob.Events(); open {
				t.Fatalf("Events carried %+v after Run returned", e)
			}
		})
	}
}
