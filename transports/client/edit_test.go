package client

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/protocol"
)

// files is a core.FileResolver for the tests: every id it knows is a
// file alice uploaded to any room.
type files map[string]protocol.File

func (f files) Resolve(_ context.Context, user, _, _ string, ids []string) ([]protocol.File, error) {
	out := make([]protocol.File, len(ids))
	for i, id := range ids {
		file, ok := f[id]
		if !ok || user != "alice" {
			return nil, protocol.Errorf(protocol.CodeNotFound, "no file %q", id)
		}
		out[i] = file
	}
	return out, nil
}

var _ core.FileResolver = files(nil)

// recvEntries reads Events until n log entries (message, edit, delete)
// have arrived, and returns them.
func recvEntries(t *testing.T, c *Client, n int) []protocol.Envelope {
	t.Helper()
	ctx := stepCtx(t)
	var got []protocol.Envelope
	for len(got) < n {
		select {
		case e := <-c.Events():
			if positions(e) {
				got = append(got, e)
			}
		case <-ctx.Done():
			t.Fatalf("got %d of %d entries: %+v", len(got), n, got)
		}
	}
	return got
}

func wantServerError(t *testing.T, what string, err error, code protocol.Code) {
	t.Helper()
	var se *ServerError
	if !errors.As(err, &se) || se.Code != code {
		t.Fatalf("%s: %v, want %s", what, err, code)
	}
}

// Edit, Delete and SendFiles over each tier (a frame on a WebSocket, the
// HTTP twins otherwise): acks carry the operation's own seq, a retry
// with the same id gets the same ack, another user is refused, and the
// events arrive in seq order, once, across a tier move.
func TestEditDeleteFiles(t *testing.T) {
	cat := protocol.File{ID: "cat", Name: "cat.png", Size: 3, Type: "image/png", URL: "/v1/files/cat", Width: 1, Height: 1}
	for _, tier := range []string{WebSocket, SSE, Poll} {
		t.Run(tier, func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, serverOptions{hub: core.Config{Files: files{"cat": cat}}})
			alice := start(t, testConfig(t, srv.URL, "alice", []string{tier}, "r"))
			bob := start(t, testConfig(t, srv.URL, "bob", []string{tier}, "r"))
			waitState(t, alice, "alice on "+tier, connectedOn(tier))
			waitState(t, bob, "bob on "+tier, connectedOn(tier))
			if tier == Poll {
				// A poll client is connected by its first answer, whose
				// session is closed, not kept: until its next poll opens a
				// session, what is sent comes by that poll's catch-up, in
				// its current state (a deleted message, deleted). Both
				// clients' next polls are in before anything is sent.
				for deadline := time.Now().Add(5 * time.Second); srv.Hub.Sessions()[Poll] != 2; time.Sleep(time.Millisecond) {
					if time.Now().After(deadline) {
						t.Fatalf("%d poll sessions open, want both clients' next polls", srv.Hub.Sessions()[Poll])
					}
				}
			}
			ctx := stepCtx(t)

			m, err := alice.SendFiles(ctx, "r", "", []string{"cat"})
			if err != nil || m.Seq != 1 {
				t.Fatalf("SendFiles: %+v, %v", m, err)
			}
			_, err = bob.SendFiles(ctx, "r", "hi", []string{"cat"})
			wantServerError(t, "bob attaches alice's file", err, protocol.CodeNotFound)
			e1, err := alice.EditID(ctx, "r", "edit-1", m.Seq, "a cat")
			if err != nil || e1.Type != protocol.TypeAck || e1.Seq != 2 || e1.ID != "edit-1" {
				t.Fatalf("Edit: %+v, %v", e1, err)
			}
			if again, err := alice.EditID(ctx, "r", "edit-1", m.Seq, "changed my mind"); err != nil || again.Seq != e1.Seq {
				t.Fatalf("retried Edit: %+v, %v; want seq %d", again, err, e1.Seq)
			}
			_, err = bob.Edit(ctx, "r", m.Seq, "bob's now")
			wantServerError(t, "bob edits alice's message", err, protocol.CodeForbidden)
			_, err = bob.Delete(ctx, "r", m.Seq)
			wantServerError(t, "bob deletes alice's message", err, protocol.CodeForbidden)
			_, err = alice.Edit(ctx, "r", 99, "nothing there")
			wantServerError(t, "an edit beyond the head", err, protocol.CodeNotFound)
			d, err := alice.Delete(ctx, "r", m.Seq)
			if err != nil || d.Seq != 3 {
				t.Fatalf("Delete: %+v, %v", d, err)
			}

			for _, c := range []*Client{alice, bob} {
				got := recvEntries(t, c, 3)
				if got[0].Type != protocol.TypeMessage || len(got[0].Files) != 1 || got[0].Files[0] != cat {
					t.Fatalf("first entry %+v, want the message with the cat", got[0])
				}
				if got[1].Type != protocol.TypeEdit || got[1].Seq != 2 || got[1].Target != 1 || got[1].Text != "a cat" {
					t.Fatalf("second entry %+v, want the edit", got[1])
				}
				if got[2].Type != protocol.TypeDelete || got[2].Seq != 3 || got[2].Target != 1 {
					t.Fatalf("third entry %+v, want the delete", got[2])
				}
				if pos := c.Positions()["r"]; pos != 3 {
					t.Fatalf("position %d after the delete, want 3", pos)
				}
			}
			// A tier move resumes after the delete: nothing again.
			other := Poll
			if tier == Poll {
				other = SSE
			}
			if err := bob.SwitchTransport(other); err != nil {
				t.Fatal(err)
			}
			waitState(t, bob, "bob on "+other, connectedOn(other))
			ack := srv.post(t, "carol", "r", "after", "after")
			if got := recvEntries(t, bob, 1); got[0].Seq != ack.Seq || got[0].Text != "after" {
				t.Fatalf("after the move got %+v, want #%d", got[0], ack.Seq)
			}
			h := srv.history(t, "r")
			if len(h) != 4 || !h[0].Deleted || h[0].Text != "" || h[0].Files != nil || !h[1].Deleted || h[1].Text != "" {
				t.Fatalf("history: %+v", h)
			}
		})
	}
}
