package storetest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/chatd/chatd/core/protocol"
)

// files of the messages these tests attach some to.
var (
	fileA = protocol.File{ID: "fa", Name: "cat.png", Size: 1234, Type: "image/png", URL: "/v1/files/fa",
		ThumbURL: "/v1/files/fa/thumb", Width: 640, Height: 480}
	fileB = protocol.File{ID: "fb", Name: "notes.txt", Size: 0, Type: "text/plain", URL: "/v1/files/fb"}
)

// edit builds an unsent edit of target by the author of msg(room, id).
func edit(room, opID string, target uint64, text string) protocol.Message {
	return protocol.Message{Room: room, ID: opID, From: "u-a", Name: "User a", Text: text,
		Kind: protocol.TypeEdit, Target: target}
}

// del builds an unsent delete of target.
func del(room, opID string, target uint64) protocol.Message {
	return protocol.Message{Room: room, ID: opID, From: "u-a", Name: "User a", Kind: protocol.TypeDelete, Target: target}
}

// amend stores op and fails the test unless it is new.
func (fx *fixture) amend(op protocol.Message) protocol.Message {
	fx.t.Helper()
	m, dup, err := fx.Store.Append(fx.ctx, op)
	if err != nil || dup {
		fx.t.Fatalf("Append(%s %s of %d) = dup %v, err %v; want a new entry", op.Kind, op.ID, op.Target, dup, err)
	}
	if m.Kind != op.Kind || m.Target != op.Target || m.Text != op.Text || m.ID != op.ID || m.From != op.From {
		fx.t.Fatalf("Append(%s %s) returned %+v", op.Kind, op.ID, m)
	}
	return m
}

// lookup calls Lookup and fails the test unless it finds (room, id).
func (fx *fixture) lookup(room, id string) protocol.Message {
	fx.t.Helper()
	m, ok, err := fx.Store.Lookup(fx.ctx, room, id)
	if err != nil || !ok {
		fx.t.Fatalf("Lookup(%s, %s) = %v, %v", room, id, ok, err)
	}
	return m
}

// wantEverywhere fails unless Since, Before and Lookup all return want
// as the entry at want.Seq.
func (fx *fixture) wantEverywhere(what string, want protocol.Message) {
	fx.t.Helper()
	if p := fx.since(want.Room, want.Seq-1, 1); len(p.Messages) != 1 {
		fx.t.Fatalf("%s: Since found %d entries at %d", what, len(p.Messages), want.Seq)
	} else {
		wantSame(fx.t, what+" (Since)", p.Messages[0], want)
	}
	if p := fx.before(want.Room, want.Seq+1, 1); len(p.Messages) != 1 {
		fx.t.Fatalf("%s: Before found %d entries at %d", what, len(p.Messages), want.Seq)
	} else {
		wantSame(fx.t, what+" (Before)", p.Messages[0], want)
	}
	wantSame(fx.t, what+" (Lookup)", fx.lookup(want.Room, want.ID), want)
}

// testEdit: an edit is an entry of its own, with the next seq, published
// like a message; every read then returns the message with the new text
// and Edited; a re-sent edit id stores nothing.
func testEdit(t *testing.T, f Factory) {
	fx := newFixture(t, f, nil)
	a := fx.append("r", "a")
	fx.append("r", "b")
	fx.clock.Advance(time.Minute)
	e1 := fx.amend(edit("r", "e1", a.Seq, "fixed"))
	if e1.Seq != 3 || e1.TS != fx.clock.Now().UnixMilli() || e1.Deleted {
		t.Fatalf("edit stored as %+v; want seq 3 stamped now", e1)
	}
	want := a
	want.Text, want.Edited = "fixed", e1.TS
	fx.wantEverywhere("edited message", want)
	fx.wantEverywhere("the edit", e1)

	again, dup, err := fx.Store.Append(fx.ctx, edit("r", "e1", a.Seq, "other text"))
	if err != nil || !dup || !again.Equal(e1) {
		t.Fatalf("re-Append of e1 = %+v dup %v err %v; want %+v, dup", again, dup, err, e1)
	}
	fx.clock.Advance(time.Minute)
	e2 := fx.amend(edit("r", "e2", a.Seq, "fixed again"))
	want.Text, want.Edited = "fixed again", e2.TS
	fx.wantEverywhere("edited twice", want)
	fx.wantEverywhere("the first edit", e1)
	fx.barrier("r")
	published, _ := fx.pub.snapshot()
	wantSeqs(t, "published", published, 1, 5)
	if !published[2].Equal(e1) || !published[3].Equal(e2) || published[0].Text != "text of a" {
		t.Fatalf("published %+v; want a as sent, then e1 and e2 as stored", published)
	}
}

// testDelete: a delete removes the message's text and files, and the
// text of its edits, for every read, durably; the files are released
// once.
func testDelete(t *testing.T, f Factory) {
	fx := newFixture(t, f, nil)
	m := msg("r", "a")
	m.Files = []protocol.File{fileA, fileB}
	a, _, err := fx.Store.Append(fx.ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	e1 := fx.amend(edit("r", "e1", a.Seq, "fixed"))
	other := fx.append("r", "b")
	d := fx.amend(del("r", "d1", a.Seq))
	if d.Seq != 4 || d.Text != "" {
		t.Fatalf("delete stored as %+v", d)
	}
	check := func(when string) {
		got := fx.lookup("r", "a")
		if !got.Equal(a.Redacted()) {
			t.Fatalf("%s: deleted message reads %+v", when, got)
		}
		for _, p := range []protocolPage{fx.since("r", 0, 4).Messages, fx.before("r", 5, 4).Messages} {
			wantSeqs(t, when, p, 1, 4)
			if p[0].Text != "" || p[0].Files != nil || !p[0].Deleted {
				t.Fatalf("%s: deleted message in a page: %+v", when, p[0])
			}
			if p[1].Text != "" || !p[1].Deleted || p[1].Kind != protocol.TypeEdit || p[1].Target != a.Seq || p[1].ID != e1.ID {
				t.Fatalf("%s: edit of a deleted message: %+v", when, p[1])
			}
			wantSame(t, when+": other message", p[2], other)
			wantSame(t, when+": delete", p[3], d)
		}
	}
	check("after delete")
	fx.pub.waitReleased(t, "r", "fa", "fb")

	again, dup, err := fx.Store.Append(fx.ctx, del("r", "d1", a.Seq))
	if err != nil || !dup || !again.Equal(d) {
		t.Fatalf("re-Append of d1 = %+v dup %v err %v; want %+v, dup", again, dup, err, d)
	}
	fx.barrier("r")
	if got := fx.pub.releasedIn("r"); len(got) != 2 {
		t.Fatalf("released %v after a re-sent delete; want fa, fb once", got)
	}
	fx.reopen()
	check("after reopen")
}

type protocolPage = []protocol.Message

// wantRefused fails unless err is a *protocol.Error with code.
func wantRefused(t *testing.T, what string, err error, code protocol.Code) {
	t.Helper()
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Code != code {
		t.Fatalf("%s: %v, want %s", what, err, code)
	}
}

// testAmendRefused: an edit or a delete of what is not a live message is
// refused with the documented code, stores nothing and publishes
// nothing; a refused id stays free.
func testAmendRefused(t *testing.T, f Factory) {
	fx := newFixture(t, f, nil)
	a := fx.append("r", "a")
	e1 := fx.amend(edit("r", "e1", a.Seq, "fixed"))
	b := fx.append("r", "b")
	fx.amend(del("r", "d1", b.Seq))
	for _, c := range []struct {
		what string
		op   protocol.Message
		code protocol.Code
	}{
		{"edit beyond the head", edit("r", "x1", 99, "t"), protocol.CodeNotFound},
		{"delete beyond the head", del("r", "x2", 5), protocol.CodeNotFound},
		{"edit in an empty room", edit("empty", "x3", 1, "t"), protocol.CodeNotFound},
		{"edit of an edit", edit("r", "x4", e1.Seq, "t"), protocol.CodeBadRequest},
		{"delete of an edit", del("r", "x5", e1.Seq), protocol.CodeBadRequest},
		{"edit of a delete", edit("r", "x6", 4, "t"), protocol.CodeBadRequest},
		{"edit of a deleted message", edit("r", "x7", b.Seq, "t"), protocol.CodeNotFound},
		{"delete of a deleted message", del("r", "x8", b.Seq), protocol.CodeNotFound},
	} {
		_, _, err := fx.Store.Append(fx.ctx, c.op)
		wantRefused(t, c.what, err, c.code)
	}
	wantBounds(t, "after refusals", fx.since("r", 0, 0), 4, 1)
	wantBounds(t, "empty room", fx.since("empty", 0, 0), 0, 1)
	if _, ok, err := fx.Store.Lookup(fx.ctx, "r", "x1"); ok || err != nil {
		t.Fatalf("a refused id is stored: %v, %v", ok, err)
	}
	for i := 2; i <= protocol.MaxEdits; i++ {
		fx.amend(edit("r", fmt.Sprint("e", i), a.Seq, fmt.Sprint("edit ", i)))
	}
	_, _, err := fx.Store.Append(fx.ctx, edit("r", "one-too-many", a.Seq, "t"))
	wantRefused(t, "edit past MaxEdits", err, protocol.CodeBadRequest)
	fx.amend(del("r", "d-after-edits", a.Seq)) // a delete still goes through
	head := fx.since("r", 0, 0).Head
	if got := fx.barrier("r"); got.Seq != head+1 {
		t.Fatalf("barrier seq %d, want %d: a refusal took a seq", got.Seq, head+1)
	}
	published, _ := fx.pub.snapshot()
	wantSeqs(t, "published", published, 1, head+1)
	redacted := 0
	for _, m := range fx.readAll("r", 0) {
		if m.Kind == protocol.TypeEdit && m.Target == a.Seq && m.Deleted && m.Text == "" {
			redacted++
		}
	}
	if redacted != protocol.MaxEdits {
		t.Fatalf("%d of a's edits redacted, want %d", redacted, protocol.MaxEdits)
	}
}

// testAmendPruned: a message pruned by retention can be neither edited
// nor deleted, while a retained one can.
func testAmendPruned(t *testing.T, f Factory) {
	fx := newFixture(t, f, func(o *Options) { o.MaxMessages = 3 })
	fx.appendN("r", "m", 5) // 3..5 retained
	_, _, err := fx.Store.Append(fx.ctx, edit("r", "e-old", 2, "t"))
	wantRefused(t, "edit of a pruned message", err, protocol.CodeNotFound)
	_, _, err = fx.Store.Append(fx.ctx, del("r", "d-old", 1))
	wantRefused(t, "delete of a pruned message", err, protocol.CodeNotFound)
	e := fx.amend(edit("r", "e-new", 4, "still here")) // seq 6: prunes 3
	if e.Seq != 6 {
		t.Fatalf("edit seq %d, want 6", e.Seq)
	}
	_, _, err = fx.Store.Append(fx.ctx, del("r", "d-3", 3))
	wantRefused(t, "delete of a message the edit pruned", err, protocol.CodeNotFound)
}

// testFiles: a message's files round-trip through every read and the
// publication, and an edit keeps them.
func testFiles(t *testing.T, f Factory) {
	fx := newFixture(t, f, nil)
	m := msg("r", "a")
	m.Files = []protocol.File{fileA, fileB}
	m.Text = ""
	a, _, err := fx.Store.Append(fx.ctx, m)
	if err != nil || len(a.Files) != 2 || a.Files[0] != fileA || a.Files[1] != fileB {
		t.Fatalf("Append with files = %+v, %v", a, err)
	}
	fx.wantEverywhere("message with files", a)
	fx.barrier("r")
	published, _ := fx.pub.snapshot()
	wantSame(t, "published", published[0], a)
	e := fx.amend(edit("r", "e", a.Seq, "now with a caption"))
	want := a
	want.Text, want.Edited = e.Text, e.TS
	fx.wantEverywhere("edited message with files", want)
	fx.reopen()
	fx.wantEverywhere("after reopen", want)
	if got := fx.pub.releasedIn("r"); len(got) != 0 {
		t.Fatalf("released %v, nothing was removed", got)
	}
}

// testPruneReleasesFiles: retention by count and by age releases the
// files of the messages it prunes, once; a deleted message's files were
// released by the delete, not again by its pruning.
func testPruneReleasesFiles(t *testing.T, f Factory) {
	fx := newFixture(t, f, func(o *Options) { o.MaxMessages = 3; o.MaxAge = time.Hour })
	with := func(id string, files ...protocol.File) {
		m := msg("r", id)
		m.Files = files
		if _, _, err := fx.Store.Append(fx.ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	with("a", fileA)           // 1
	with("b", fileB)           // 2
	fx.amend(del("r", "d", 2)) // 3: releases fb
	fx.pub.waitReleased(t, "r", "fb")
	fx.append("r", "c") // 4: prunes 1, releases fa
	fx.pub.waitReleased(t, "r", "fb", "fa")
	fx.appendN("r", "more", 2) // 5, 6: prune 2 (deleted) and 3
	fx.barrier("r")
	if got := fx.pub.releasedIn("r"); !sameIDs(got, []string{"fb", "fa"}) {
		t.Fatalf("released %v, want fb, fa: a deleted message's files are released once", got)
	}

	g := protocol.File{ID: "fg", Name: "g.gif", Size: 9, Type: "image/gif", URL: "/g"}
	m := msg("s", "old")
	m.Files = []protocol.File{g}
	if _, _, err := fx.Store.Append(fx.ctx, m); err != nil {
		t.Fatal(err)
	}
	fx.clock.Advance(2 * time.Hour)
	fx.append("s", "new")
	fx.sweep()
	if fx.Sweep == nil {
		return // the engine prunes by age on its own schedule
	}
	wantBounds(t, "after sweep", fx.since("s", 0, 0), 2, 2)
	fx.pub.waitReleased(t, "s", "fg")
}
