package core_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/core/bolt"
	"github.com/chatd/chatd/core/protocol"
)

// resolver is a FileResolver over a fixed set of files, each uploaded by
// one user to one room. It counts its calls.
type resolver struct {
	mu    sync.Mutex
	files map[string]upload
	calls int
	msgs  []string // the msgID of each call
}

type upload struct {
	user, room string
	file       protocol.File
}

func newResolver(ups ...upload) *resolver {
	r := &resolver{files: map[string]upload{}}
	for _, u := range ups {
		r.files[u.file.ID] = u
	}
	return r
}

func (r *resolver) Resolve(_ context.Context, user, room, msgID string, ids []string) ([]protocol.File, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	r.msgs = append(r.msgs, msgID)
	out := make([]protocol.File, len(ids))
	for i, id := range ids {
		u, ok := r.files[id]
		if !ok || u.user != user || u.room != room {
			return nil, protocol.Errorf(protocol.CodeNotFound, "no file %q of yours in this room", id)
		}
		out[i] = u.file
	}
	return out, nil
}

func (r *resolver) called() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls
}

// released collects what the hub hands to Config.OnDelete.
type released struct {
	mu    sync.Mutex
	files map[string][]string // ids by room
	more  chan struct{}
}

func newReleased() *released {
	return &released{files: map[string][]string{}, more: make(chan struct{}, 1)}
}

func (r *released) onDelete(room string, files []protocol.File) {
	r.mu.Lock()
	r.files[room] = append(r.files[room], protocol.FileIDs(files)...)
	r.mu.Unlock()
	select {
	case r.more <- struct{}{}:
	default:
	}
}

// wait waits until n files were released in room and returns their ids.
func (r *released) wait(t *testing.T, room string, n int) []string {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		r.mu.Lock()
		got := append([]string(nil), r.files[room]...)
		r.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-r.more:
		case <-deadline:
			t.Fatalf("released in %s: %v, want %d files", room, got, n)
		}
	}
}

var (
	fileCat = protocol.File{ID: "cat", Name: "cat.png", Size: 10, Type: "image/png", URL: "/v1/files/cat", Width: 2, Height: 2}
	fileDoc = protocol.File{ID: "doc", Name: "a.pdf", Size: 20, Type: "application/pdf", URL: "/v1/files/doc"}
)

// newEditHub is a hub over bolt with maxMessages retained per room.
func newEditHub(t *testing.T, cfg core.Config, maxMessages int) *core.Hub {
	t.Helper()
	store, err := bolt.Open(bolt.Config{Path: filepath.Join(t.TempDir(), "chat.db"), MaxMessages: maxMessages})
	if err != nil {
		t.Fatal(err)
	}
	hub := core.New(store, cfg)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := hub.Shutdown(ctx); err != nil {
			t.Error(err)
		}
		if err := store.Close(); err != nil {
			t.Error(err)
		}
	})
	return hub
}

func wantCode(t *testing.T, what string, err error, code protocol.Code) {
	t.Helper()
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Code != code {
		t.Fatalf("%s: %v, want %s", what, err, code)
	}
}

// Who may edit and delete: the author edits; nobody else does, an admin
// included; the author or an admin deletes; a user without access to the
// room gets forbidden before anything else.
func TestEditDeletePermissions(t *testing.T) {
	ctx := context.Background()
	hub := newEditHub(t, core.Config{}, 0)
	alice, bob := auth.Identity{User: "alice"}, auth.Identity{User: "bob"}
	admin := auth.Identity{User: "root", Admin: true}
	boxed := auth.Identity{User: "carol", Rooms: []string{"other"}}
	m1, _ := hub.Send(ctx, alice, "r", "m1", "one")
	m2, _ := hub.Send(ctx, alice, "r", "m2", "two")

	_, err := hub.Edit(ctx, bob, "r", "e-bob", m1.Seq, "mine now")
	wantCode(t, "bob edits alice's message", err, protocol.CodeForbidden)
	_, err = hub.Edit(ctx, admin, "r", "e-admin", m1.Seq, "admin's")
	wantCode(t, "an admin edits alice's message", err, protocol.CodeForbidden)
	_, err = hub.Delete(ctx, bob, "r", "d-bob", m1.Seq)
	wantCode(t, "bob deletes alice's message", err, protocol.CodeForbidden)
	_, err = hub.Delete(ctx, boxed, "r", "d-carol", m1.Seq)
	wantCode(t, "a user without the room deletes", err, protocol.CodeForbidden)

	e, err := hub.Edit(ctx, alice, "r", "e1", m1.Seq, "one, fixed")
	if err != nil || e.Kind != protocol.TypeEdit || e.Target != m1.Seq || e.Seq != 3 {
		t.Fatalf("alice edits: %+v, %v", e, err)
	}
	d, err := hub.Delete(ctx, admin, "r", "d-admin", m2.Seq)
	if err != nil || d.Kind != protocol.TypeDelete || d.Target != m2.Seq || d.From != "root" || d.Seq != 4 {
		t.Fatalf("an admin deletes: %+v, %v", d, err)
	}
	if _, err := hub.Delete(ctx, alice, "r", "d-alice", m1.Seq); err != nil {
		t.Fatalf("alice deletes her own: %v", err)
	}
	p, err := hub.History(ctx, alice, "r", 0, 10)
	if err != nil || len(p.Messages) != 5 {
		t.Fatalf("history: %+v, %v", p, err)
	}
	if got := p.Messages[0]; !got.Deleted || got.Text != "" {
		t.Fatalf("m1 after edit and delete: %+v", got)
	}
	if got := p.Messages[2]; got.Kind != protocol.TypeEdit || !got.Deleted || got.Text != "" {
		t.Fatalf("the edit of a deleted message: %+v", got)
	}
}

// The hub's refusals: a missing, pruned, deleted or non-message target;
// a malformed request; bad text.
func TestEditDeleteRefusals(t *testing.T) {
	ctx := context.Background()
	hub := newEditHub(t, core.Config{MaxTextLen: 10}, 4)
	alice := auth.Identity{User: "alice"}
	for _, id := range []string{"m1", "m2", "m3"} {
		if _, err := hub.Send(ctx, alice, "r", id, "text"); err != nil {
			t.Fatal(err)
		}
	}
	e, _ := hub.Edit(ctx, alice, "r", "e1", 3, "fixed") // 4
	hub.Delete(ctx, alice, "r", "d1", 2)                // 5: prunes 1
	for _, c := range []struct {
		what string
		err  error
		code protocol.Code
	}{
		{"edit beyond the head", second(hub.Edit(ctx, alice, "r", "x", 9, "t")), protocol.CodeNotFound},
		{"edit of a pruned message", second(hub.Edit(ctx, alice, "r", "x", 1, "t")), protocol.CodeNotFound},
		{"edit of a deleted message", second(hub.Edit(ctx, alice, "r", "x", 2, "t")), protocol.CodeNotFound},
		{"delete of a deleted message", second(hub.Delete(ctx, alice, "r", "x", 2)), protocol.CodeNotFound},
		{"edit of an edit", second(hub.Edit(ctx, alice, "r", "x", e.Seq, "t")), protocol.CodeBadRequest},
		{"delete of a delete", second(hub.Delete(ctx, alice, "r", "x", 5)), protocol.CodeBadRequest},
		{"seq 0", second(hub.Edit(ctx, alice, "r", "x", 0, "t")), protocol.CodeBadRequest},
		{"no id", second(hub.Delete(ctx, alice, "r", "", 3)), protocol.CodeBadRequest},
		{"empty text", second(hub.Edit(ctx, alice, "r", "x", 3, " \x01")), protocol.CodeBadRequest},
		{"long text", second(hub.Edit(ctx, alice, "r", "x", 3, "12345678901")), protocol.CodeTooLarge},
		{"bad room", second(hub.Edit(ctx, alice, "a,b", "x", 3, "t")), protocol.CodeBadRequest},
	} {
		wantCode(t, c.what, c.err, c.code)
	}
}

func second[T any](_ T, err error) error { return err }

// A retried edit or delete gets its first answer back, even once the
// message is deleted and the user's send rate is spent, and stores
// nothing; edits and deletes count against the send rate.
func TestAmendRetryAndRate(t *testing.T) {
	ctx := context.Background()
	now := time.Unix(1_800_000_000, 0)
	hub := newEditHub(t, core.Config{SendRate: 1, SendBurst: 3, Now: func() time.Time { return now }}, 0)
	alice := auth.Identity{User: "alice"}
	m, _ := hub.Send(ctx, alice, "r", "m1", "hello")
	e, err := hub.Edit(ctx, alice, "r", "e1", m.Seq, "hello!")
	if err != nil {
		t.Fatal(err)
	}
	d, err := hub.Delete(ctx, alice, "r", "d1", m.Seq)
	if err != nil {
		t.Fatal(err)
	}
	_, err = hub.Send(ctx, alice, "r", "m2", "over")
	wantCode(t, "a fourth send in the burst of 3", err, protocol.CodeRateLimited)
	if again, err := hub.Edit(ctx, alice, "r", "e1", m.Seq, "other"); err != nil || again.Seq != e.Seq || again.Kind != protocol.TypeEdit {
		t.Fatalf("retried edit: %+v, %v; want seq %d", again, err, e.Seq)
	}
	if again, err := hub.Delete(ctx, alice, "r", "d1", m.Seq); err != nil || again.Seq != d.Seq || again.TS != d.TS {
		t.Fatalf("retried delete: %+v, %v; want %+v", again, err, d)
	}
	_, err = hub.Delete(ctx, alice, "r", "d2", m.Seq)
	wantCode(t, "a new delete over the rate", err, protocol.CodeRateLimited)
	if p, _ := hub.History(ctx, alice, "r", 0, 10); p.Head != 3 {
		t.Fatalf("head %d after retries, want 3", p.Head)
	}
}

// Attachments: resolved through Config.Files and stored with the
// message; refused without a resolver, for ids the resolver refuses,
// and when the feature is off; a retry is answered without resolving
// again; empty text is fine with files.
func TestSendFiles(t *testing.T) {
	ctx := context.Background()
	res := newResolver(upload{"alice", "r", fileCat}, upload{"alice", "r", fileDoc}, upload{"bob", "r", protocol.File{ID: "bobs", URL: "/b"}})
	filesOn := true
	gate := func(user, feature string) bool { return feature != core.FeatureFiles || filesOn }
	hub := newEditHub(t, core.Config{Files: res, Features: gate}, 0)
	alice := auth.Identity{User: "alice"}
	m, err := hub.SendFiles(ctx, alice, "r", "m1", "  ", []string{"doc", "cat"})
	if err != nil || m.Text != "" || len(m.Files) != 2 || m.Files[0] != fileDoc || m.Files[1] != fileCat {
		t.Fatalf("send with files: %+v, %v", m, err)
	}
	if again, err := hub.SendFiles(ctx, alice, "r", "m1", "", []string{"doc", "cat"}); err != nil || !again.Equal(m) || res.called() != 1 {
		t.Fatalf("retry: %+v, %v, %d resolves; want the stored message, 1 resolve", again, err, res.called())
	}
	if fmt.Sprint(res.msgs) != "[m1]" {
		t.Fatalf("resolved for messages %v, want m1", res.msgs)
	}
	p, _ := hub.History(ctx, alice, "r", 0, 10)
	if len(p.Messages) != 1 || !p.Messages[0].Equal(m) {
		t.Fatalf("history: %+v", p.Messages)
	}
	_, err = hub.SendFiles(ctx, alice, "r", "m2", "hi", []string{"bobs"})
	wantCode(t, "another user's file", err, protocol.CodeNotFound)
	_, err = hub.SendFiles(ctx, alice, "other", "m2", "hi", []string{"cat"})
	wantCode(t, "a file of another room", err, protocol.CodeNotFound)
	_, err = hub.SendFiles(ctx, alice, "r", "m2", "hi", []string{"cat", "cat"})
	wantCode(t, "a file twice", err, protocol.CodeBadRequest)
	_, err = hub.SendFiles(ctx, alice, "r", "m2", "", nil)
	wantCode(t, "no text and no files", err, protocol.CodeBadRequest)
	filesOn = false
	_, err = hub.SendFiles(ctx, alice, "r", "m3", "hi", []string{"cat"})
	wantCode(t, "files off", err, protocol.CodeFeatureDisabled)

	plain := newEditHub(t, core.Config{}, 0)
	_, err = plain.SendFiles(ctx, alice, "r", "m1", "hi", []string{"cat"})
	wantCode(t, "no resolver", err, protocol.CodeBadRequest)
}

// liar is a resolver that answers with the wrong files.
type liar struct{ files []protocol.File }

func (l liar) Resolve(context.Context, string, string, string, []string) ([]protocol.File, error) {
	return l.files, nil
}

// A resolver whose answer does not match the ids is a server fault:
// internal, and nothing stored.
func TestSendFilesResolverMismatch(t *testing.T) {
	ctx := context.Background()
	alice := auth.Identity{User: "alice"}
	for name, l := range map[string]liar{
		"too few":   {},
		"other id":  {[]protocol.File{{ID: "dog", URL: "/d"}}},
		"bare file": {[]protocol.File{{ID: "cat"}}},
	} {
		hub := newEditHub(t, core.Config{Files: l}, 0)
		_, err := hub.SendFiles(ctx, alice, "r", "m1", "hi", []string{"cat"})
		wantCode(t, name, err, protocol.CodeInternal)
		if p, _ := hub.History(ctx, alice, "r", 0, 10); p.Head != 0 {
			t.Fatalf("%s: a message was stored", name)
		}
	}
}

// Config.OnDelete hears of a deleted message's files and of the files of
// pruned messages, once each.
func TestOnDeleteReleasesFiles(t *testing.T) {
	ctx := context.Background()
	rel := newReleased()
	end := protocol.File{ID: "end", Name: "end.txt", Type: "text/plain", URL: "/v1/files/end"}
	res := newResolver(upload{"alice", "r", fileCat}, upload{"alice", "r", fileDoc}, upload{"alice", "r", end})
	hub := newEditHub(t, core.Config{Files: res, OnDelete: rel.onDelete}, 3)
	alice := auth.Identity{User: "alice"}
	send := func(id, text string, files ...string) protocol.Message {
		t.Helper()
		m, err := hub.SendFiles(ctx, alice, "r", id, text, files)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	del := func(id string, seq uint64) {
		t.Helper()
		if _, err := hub.Delete(ctx, alice, "r", id, seq); err != nil {
			t.Fatal(err)
		}
	}
	send("a", "cat", "cat")      // 1
	b := send("b", "doc", "doc") // 2
	del("d", b.Seq)              // 3: releases doc
	if got := rel.wait(t, "r", 1); got[0] != "doc" {
		t.Fatalf("released %v, want doc", got)
	}
	send("c", "prunes a") // 4: a (1) goes, releases cat
	send("e", "prunes b") // 5: b was deleted, its files released already
	send("f", "prunes d") // 6
	del("d2", 6)          // 7: f had no files
	g := send("g", "", "end")
	del("d3", g.Seq) // releases end, after everything above
	if got := rel.wait(t, "r", 3); fmt.Sprint(got) != "[doc cat end]" {
		t.Fatalf("released %v, want doc, cat, end once each", got)
	}
}
