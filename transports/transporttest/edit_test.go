package transporttest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/protocol"
)

// Issue 11: edit and delete, and attachments. Each edit or delete is an
// entry of the room's log with its own seq, delivered like a message on
// every tier, replayed exactly on resume, with the message's current
// state in replay and history.

// amend sends an edit (text set) or a delete (text empty) of seq in room
// as c, under id, and returns the reply: an ack or an error envelope.
func amend(t testing.TB, c Client, room, id string, seq uint64, text string) protocol.Envelope {
	t.Helper()
	typ := protocol.TypeEdit
	if text == "" {
		typ = protocol.TypeDelete
	}
	return reply(t, c, protocol.Envelope{Type: typ, Room: room, ID: id, Seq: seq, Text: text, Ref: id})
}

// amendOK is amend that fails unless the reply is an ack with seq want.
func amendOK(t testing.TB, c Client, room, id string, seq uint64, text string, want uint64) protocol.Envelope {
	t.Helper()
	got := amend(t, c, room, id, seq, text)
	if got.Type != protocol.TypeAck || got.ID != id || got.Seq != want || got.Room != room {
		t.Fatalf("%s of %d (%s): %+v; want an ack with seq %d", id, seq, c.Transport(), got, want)
	}
	return got
}

// sendOK sends a message as c and fails unless it is acked with seq want.
func sendOK(t testing.TB, c Client, room, id, text string, want uint64) {
	t.Helper()
	ack, err := c.Send(Ctx(t), room, id, text)
	if err != nil || ack.Type != protocol.TypeAck || ack.Seq != want {
		t.Fatalf("send %s (%s): %+v, %v; want seq %d", id, c.Transport(), ack, err, want)
	}
}

// expectEntries reads the log entries (message, edit, delete) from..to of
// room from c, in order, and returns them. Anything but ephemeral
// envelopes in between fails.
func expectEntries(t testing.TB, c Client, room string, from, to uint64) []protocol.Envelope {
	t.Helper()
	ctx := Ctx(t)
	var out []protocol.Envelope
	for s := from; s <= to; {
		e, err := c.Next(ctx)
		if err != nil {
			t.Fatalf("%s: waiting for entry %d: %v", c.Transport(), s, err)
		}
		switch e.Type {
		case protocol.TypePresence, protocol.TypeTyping, protocol.TypeReceipt:
			continue
		case protocol.TypeMessage, protocol.TypeEdit, protocol.TypeDelete:
		default:
			t.Fatalf("%s: waiting for entry %d, got %+v", c.Transport(), s, e)
		}
		if e.Room != room || e.Seq != s {
			t.Fatalf("%s: got %s %s/%d, want entry %s/%d", c.Transport(), e.Type, e.Room, e.Seq, room, s)
		}
		out = append(out, e)
		s++
	}
	return out
}

// entry describes what an entry must be; zero fields are not checked,
// except Text, which is checked always.
type entry struct {
	typ     string
	target  uint64
	text    string
	deleted bool
	edited  bool
	files   int
}

func wantEntries(t testing.TB, what string, got []protocol.Envelope, want ...entry) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d entries, want %d", what, len(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.Type != w.typ || g.Target != w.target || g.Text != w.text || g.Deleted != w.deleted ||
			(g.Edited != 0) != w.edited || len(g.Files) != w.files {
			t.Fatalf("%s: entry %d is %s", what, i, protocol.Encode(g))
		}
	}
}

// Live delivery: edits and deletes reach every subscriber of the room,
// the author's sessions included, in seq order between the messages.
func TestEditDeleteDelivery(t *testing.T) { Run(t, testEditDeleteDelivery) }

func testEditDeleteDelivery(t *testing.T, dial Dialer) {
	const room = "edits"
	e := NewEnv(t, Options{Hub: fast})
	alice := dial(t, e, e.Token(t, "alice", Claims{Name: "Alice"}), []Join{{Room: room}})
	bob := dial(t, e, e.Token(t, "bob", Claims{}), []Join{{Room: room}})
	sendOK(t, alice, room, "m1", "helo", 1)
	sendOK(t, bob, room, "m2", "second", 2)
	amendOK(t, alice, room, "e1", 1, "hello", 3)
	amendOK(t, bob, room, "d1", 2, "", 4)
	for _, c := range []Client{alice, bob} {
		got := expectEntries(t, c, room, 1, 4)
		wantEntries(t, "live on "+c.Transport(), got,
			entry{typ: protocol.TypeMessage, text: "helo"},
			entry{typ: protocol.TypeMessage, text: "second"},
			entry{typ: protocol.TypeEdit, target: 1, text: "hello"},
			entry{typ: protocol.TypeDelete, target: 2})
		if got[2].From != "alice" || got[2].Name != "Alice" || got[2].ID != "e1" || got[2].TS == 0 ||
			got[3].From != "bob" || got[3].ID != "d1" {
			t.Fatalf("%s: edit %+v, delete %+v", c.Transport(), got[2], got[3])
		}
	}
	// bob's SSE stream or poll restarts from the cursor the server gave
	// after the delete: it must be past it.
	join(t, bob, "elsewhere", nil)
	sendOK(t, alice, room, "m3", "third", 5)
	for _, c := range []Client{alice, bob} {
		wantEntries(t, "after the restart", expectEntries(t, c, room, 5, 5), entry{typ: protocol.TypeMessage, text: "third"})
	}
	fence(t, e, room, alice, bob)
}

// Resume: a client that was away during edits and a delete gets exactly
// the entries it missed, with a deleted message's edits redacted; one
// that resumes from before the messages gets them in their current state,
// a deleted one without text. History shows the current state, and no
// deleted text is served anywhere.
func TestEditResume(t *testing.T) {
	Run(t, func(t *testing.T, dial Dialer) { testEditResume(t, dial, false) })
}

// The same with alice in the room throughout, so the node follows it and
// keeps its newest entries in memory. The delete of 2 cuts that window
// through 3, the edit of 2 it redacts, so bob's resume from 2 and carol's
// from 0 come from the store, redacted as without the window; dave's from
// 3 comes from memory.
func TestEditResumeFromMemory(t *testing.T) {
	Run(t, func(t *testing.T, dial Dialer) { testEditResume(t, dial, true) })
}

func testEditResume(t *testing.T, dial Dialer, watched bool) {
	const room = "edit-resume"
	e := NewEnv(t, Options{Hub: fast})
	tok := e.Token(t, "alice", Claims{})
	var joins []Join
	if watched {
		joins = []Join{{Room: room}}
	}
	alice := dial(t, e, tok, joins)
	sendOK(t, alice, room, "m1", "helo", 1)
	sendOK(t, alice, room, "m2", "secret typo", 2)
	// bob saw 1 and 2, then went away.
	amendOK(t, alice, room, "e1", 2, "secret, fixed", 3)
	amendOK(t, alice, room, "e2", 1, "hello", 4)
	amendOK(t, alice, room, "d1", 2, "", 5)
	if watched {
		// An ack says that the entry is stored, not that this node has
		// published it: the store answers, then hands the entry to the
		// node's fan-out, which delivers on goroutines of its own. A join
		// uses the window only if it reaches the head the store reports,
		// so a resume that came before the delete's publication would be
		// replayed from the store. The window takes an entry as it is
		// published, under the room's lock, before the room's live
		// sessions are offered it: alice's live copy of 5 is the sign.
		expectEntries(t, alice, room, 1, 5)
	}

	bob := dial(t, e, e.Token(t, "bob", Claims{}), []Join{{Room: room, Since: ptr(2)}})
	wantEntries(t, "resumed after 2", expectEntries(t, bob, room, 3, 5),
		entry{typ: protocol.TypeEdit, target: 2, deleted: true},
		entry{typ: protocol.TypeEdit, target: 1, text: "hello"},
		entry{typ: protocol.TypeDelete, target: 2})
	if watched {
		// The delete of 2 cut the window through 3, the edit it redacts:
		// bob's resume came from the store. dave's, from 3, comes from
		// memory.
		dave := dial(t, e, e.Token(t, "dave", Claims{}), []Join{{Room: room, Since: ptr(3)}})
		wantEntries(t, "resumed after 3", expectEntries(t, dave, room, 4, 5),
			entry{typ: protocol.TypeEdit, target: 1, text: "hello"},
			entry{typ: protocol.TypeDelete, target: 2})
		if n := series(scrape(t, e), "chat_replayed_entries_total", "from", "memory"); n < 2 {
			t.Fatalf("%v entries replayed from memory, want dave's 2 at least", n)
		}
		dave.Close()
	}
	carol := dial(t, e, e.Token(t, "carol", Claims{}), []Join{{Room: room, Since: ptr(0)}})
	fromStart := []entry{
		{typ: protocol.TypeMessage, text: "hello", edited: true},
		{typ: protocol.TypeMessage, deleted: true},
		{typ: protocol.TypeEdit, target: 2, deleted: true},
		{typ: protocol.TypeEdit, target: 1, text: "hello"},
		{typ: protocol.TypeDelete, target: 2},
	}
	wantEntries(t, "resumed from 0", expectEntries(t, carol, room, 1, 5), fromStart...)

	// Live again: one more edit reaches both, once.
	amendOK(t, alice, room, "e3", 1, "hello again", 6)
	for _, c := range []Client{bob, carol} {
		wantEntries(t, "live edit", expectEntries(t, c, room, 6, 6), entry{typ: protocol.TypeEdit, target: 1, text: "hello again"})
	}
	fence(t, e, room, bob, carol)

	h := history(t, e, tok, room)
	fromStart[0].text = "hello again"
	wantEntries(t, "history", h.Messages[:5], fromStart...)
	for _, m := range h.Messages {
		if strings.Contains(m.Text, "secret") {
			t.Fatalf("history serves deleted text: %s", protocol.Encode(m))
		}
	}
}

// Who may: only the author edits, the author or an admin deletes, anyone
// else gets forbidden; a gone or wrong target is not_found or
// bad_request; a retried id gets its first ack and is delivered once.
func TestEditRules(t *testing.T) { Run(t, testEditRules) }

func testEditRules(t *testing.T, dial Dialer) {
	const room = "edit-rules"
	e := NewEnv(t, Options{Hub: fast})
	alice := dial(t, e, e.Token(t, "alice", Claims{}), []Join{{Room: room}})
	bob := dial(t, e, e.Token(t, "bob", Claims{}), nil)
	admin := dial(t, e, e.Token(t, "ops", Claims{Admin: true}), nil)
	sendOK(t, alice, room, "m1", "one", 1)
	sendOK(t, alice, room, "m2", "two", 2)

	wantError(t, "bob edits", amend(t, bob, room, "b1", 1, "mine"), protocol.CodeForbidden)
	wantError(t, "bob deletes", amend(t, bob, room, "b2", 1, ""), protocol.CodeForbidden)
	wantError(t, "an admin edits", amend(t, admin, room, "a1", 1, "admin's"), protocol.CodeForbidden)
	first := amendOK(t, alice, room, "e1", 1, "one!", 3)
	again := amendOK(t, alice, room, "e1", 1, "one!!", 3)
	if again.TS != first.TS {
		t.Fatalf("retried edit: %+v, want the first ack %+v", again, first)
	}
	amendOK(t, admin, room, "a2", 2, "", 4)
	amendOK(t, admin, room, "a2", 2, "", 4) // a retry after the message is gone
	wantError(t, "edit of a deleted message", amend(t, alice, room, "e2", 2, "two!"), protocol.CodeNotFound)
	wantError(t, "delete of a deleted message", amend(t, alice, room, "d2", 2, ""), protocol.CodeNotFound)
	wantError(t, "edit beyond the head", amend(t, alice, room, "e3", 40, "x"), protocol.CodeNotFound)
	wantError(t, "edit of an edit", amend(t, alice, room, "e4", 3, "x"), protocol.CodeBadRequest)
	wantError(t, "seq 0", amend(t, alice, room, "e5", 0, "x"), protocol.CodeBadRequest)
	wantError(t, "empty edit", amend(t, alice, room, "e6", 1, " \t "), protocol.CodeBadRequest)
	wantError(t, "bob without the room", amend(t, dial(t, e, e.Token(t, "bob", Claims{Rooms: []string{"other"}}), nil),
		room, "b3", 1, "x"), protocol.CodeForbidden)

	wantEntries(t, "delivered", expectEntries(t, alice, room, 1, 4),
		entry{typ: protocol.TypeMessage, text: "one"},
		entry{typ: protocol.TypeMessage, text: "two"},
		entry{typ: protocol.TypeEdit, target: 1, text: "one!"},
		entry{typ: protocol.TypeDelete, target: 2})
	fence(t, e, room, alice) // nothing else: the retries stored nothing
}

// files is a small FileResolver for the tests: the real file service
// lands later. Each file belongs to one uploader; any room will do.
type files struct {
	byID map[string]protocol.File
	mu   sync.Mutex
	gone []string // ids released through Config.OnDelete; guarded by mu
}

func newFiles(ids ...string) *files {
	f := &files{byID: map[string]protocol.File{}}
	for _, id := range ids {
		f.byID[id] = protocol.File{ID: id, Name: id + ".png", Size: int64(len(id)), Type: "image/png",
			URL: "/v1/files/" + id, ThumbURL: "/v1/files/" + id + "/thumb", Width: 4, Height: 3}
	}
	return f
}

func (f *files) Resolve(_ context.Context, user, _, _ string, ids []string) ([]protocol.File, error) {
	out := make([]protocol.File, len(ids))
	for i, id := range ids {
		file, ok := f.byID[id]
		if !ok || !strings.HasPrefix(id, user+"-") {
			return nil, protocol.Errorf(protocol.CodeNotFound, "no file %q of yours", id)
		}
		out[i] = file
	}
	return out, nil
}

func (f *files) onDelete(_ string, files []protocol.File) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gone = append(f.gone, protocol.FileIDs(files)...)
}

func (f *files) released() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.gone...)
}

// sendFiles sends a message with files as c and returns the reply.
func sendFiles(t testing.TB, c Client, room, id, text string, ids ...string) protocol.Envelope {
	t.Helper()
	return reply(t, c, protocol.Envelope{Type: protocol.TypeSend, Room: room, ID: id, Text: text,
		Files: protocol.FileRefs(ids), Ref: id})
}

// Attachments: a send names files by id, the resolver makes them whole,
// and every subscriber's message, the replay and history carry them; ids
// the resolver refuses, and too many, are refused; an edit keeps them, a
// delete removes them and hands them to OnDelete; a server without a
// resolver refuses files.
func TestAttachments(t *testing.T) { Run(t, testAttachments) }

func testAttachments(t *testing.T, dial Dialer) {
	const room = "files"
	fs := newFiles("alice-cat", "alice-dog", "bob-cow")
	hub := fast
	hub.Files, hub.OnDelete = fs, fs.onDelete
	e := NewEnv(t, Options{Hub: hub})
	tok := e.Token(t, "alice", Claims{})
	alice := dial(t, e, tok, []Join{{Room: room}})
	bob := dial(t, e, e.Token(t, "bob", Claims{}), []Join{{Room: room}})

	if got := sendFiles(t, alice, room, "m1", "", "alice-cat", "alice-dog"); got.Type != protocol.TypeAck || got.Seq != 1 {
		t.Fatalf("send with files: %+v", got)
	}
	wantError(t, "another user's file", sendFiles(t, alice, room, "m2", "x", "bob-cow"), protocol.CodeNotFound)
	wantError(t, "an unknown file", sendFiles(t, bob, room, "m3", "x", "bob-horse"), protocol.CodeNotFound)
	many := make([]string, protocol.MaxFiles+1)
	for i := range many {
		many[i] = fmt.Sprint("alice-", i)
	}
	wantError(t, "too many files", sendFiles(t, alice, room, "m4", "x", many...), protocol.CodeBadRequest)
	for _, c := range []Client{alice, bob} {
		m := expectEntries(t, c, room, 1, 1)[0]
		if len(m.Files) != 2 || m.Files[0] != fs.byID["alice-cat"] || m.Files[1] != fs.byID["alice-dog"] || m.Text != "" {
			t.Fatalf("%s: message %s", c.Transport(), protocol.Encode(m))
		}
	}
	amendOK(t, alice, room, "e1", 1, "two pets", 2)
	h := history(t, e, tok, room)
	wantEntries(t, "history after the edit", h.Messages,
		entry{typ: protocol.TypeMessage, text: "two pets", edited: true, files: 2},
		entry{typ: protocol.TypeEdit, target: 1, text: "two pets"})
	amendOK(t, alice, room, "d1", 1, "", 3)
	carol := dial(t, e, e.Token(t, "carol", Claims{}), []Join{{Room: room, Since: ptr(0)}})
	wantEntries(t, "replayed after the delete", expectEntries(t, carol, room, 1, 3),
		entry{typ: protocol.TypeMessage, deleted: true},
		entry{typ: protocol.TypeEdit, target: 1, deleted: true},
		entry{typ: protocol.TypeDelete, target: 1})
	fence(t, e, room, carol) // the delete has committed, and so its release
	if got := fs.released(); fmt.Sprint(got) != "[alice-cat alice-dog]" {
		t.Fatalf("released %v, want the deleted message's two files", got)
	}

	plain := NewEnv(t, Options{Hub: fast})
	c := dial(t, plain, plain.Token(t, "alice", Claims{}), nil)
	wantError(t, "files without a resolver", sendFiles(t, c, room, "m1", "x", "alice-cat"), protocol.CodeBadRequest)
}

var _ core.FileResolver = (*files)(nil)
