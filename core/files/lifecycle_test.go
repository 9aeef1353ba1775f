package files_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chatd/chatd/core/files"
	"github.com/chatd/chatd/core/files/filestest"
	"github.com/chatd/chatd/core/protocol"
)

func TestResolve(t *testing.T) {
	e := newEnv(t, files.Config{MaxPerMessage: 3})
	a := e.mustPut(t, alice, "general", "a.png", filestest.PNG(10, 10, false))
	b := e.mustPut(t, alice, "general", "b.txt", []byte("bee"))
	other := e.mustPut(t, alice, "random", "c.txt", []byte("sea"))
	bobs := e.mustPut(t, bob, "general", "d.txt", []byte("dee"))

	got, err := e.svc.Resolve(t.Context(), "alice", "general", "m1", []string{b.ID, a.ID})
	if err != nil || !slices.Equal(got, []files.File{b, a}) {
		t.Fatalf("Resolve = %+v, %v", got, err)
	}
	// A retried send with the same id resolves the same.
	if again, err := e.svc.Resolve(t.Context(), "alice", "general", "m1", []string{b.ID, a.ID}); err != nil || !slices.Equal(again, got) {
		t.Fatalf("retry = %+v, %v", again, err)
	}
	for _, tc := range []struct {
		what string
		user string
		msg  string
		ids  []string
		code protocol.Code
	}{
		{"another message", "alice", "m2", []string{a.ID}, protocol.CodeBadRequest},
		{"another room", "alice", "m2", []string{other.ID}, protocol.CodeForbidden},
		{"another user", "alice", "m2", []string{bobs.ID}, protocol.CodeForbidden},
		{"bob sends alice's", "bob", "m2", []string{b.ID}, protocol.CodeForbidden},
		{"unknown", "alice", "m2", []string{"AAAAAAAAAAAAAAAAAAAAAA"}, protocol.CodeNotFound},
		{"not an id", "alice", "m2", []string{"../meta/x"}, protocol.CodeNotFound},
		{"twice", "bob", "m2", []string{bobs.ID, bobs.ID}, protocol.CodeBadRequest},
		{"too many", "bob", "m2", []string{bobs.ID, "b", "c", "d"}, protocol.CodeBadRequest},
		{"no message id", "bob", "", []string{bobs.ID}, protocol.CodeBadRequest},
	} {
		_, err := e.svc.Resolve(t.Context(), tc.user, "general", tc.msg, tc.ids)
		if code, _ := protocol.CodeOf(err); code != tc.code {
			t.Errorf("%s: %v; want %s", tc.what, err, tc.code)
		}
	}
	if got, err := e.svc.Resolve(t.Context(), "bob", "general", "m3", nil); err != nil || len(got) != 0 {
		t.Fatalf("no files: %v, %v", got, err)
	}
}

func TestResolveAfterGrace(t *testing.T) {
	e := newEnv(t, files.Config{Grace: time.Hour})
	f := e.mustPut(t, alice, "general", "a.txt", []byte("late"))
	sent := e.mustPut(t, alice, "general", "b.txt", []byte("on time"))
	if _, err := e.svc.Resolve(t.Context(), "alice", "general", "m1", []string{sent.ID}); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Hour + time.Second)
	_, err := e.svc.Resolve(t.Context(), "alice", "general", "m2", []string{f.ID})
	wantCode(t, err, protocol.CodeNotFound)
	// A file already sent stays good for its message's retries.
	if _, err := e.svc.Resolve(t.Context(), "alice", "general", "m1", []string{sent.ID}); err != nil {
		t.Fatal(err)
	}
}

func TestDeleteRemovesEverything(t *testing.T) {
	e := newEnv(t, files.Config{})
	f := e.mustPut(t, alice, "general", "a.png", filestest.PNG(400, 400, false))
	if n := len(filestest.Files(t, e.dir)); n != 5 { // data, thumb, meta, room index, pending marker
		t.Fatalf("an image is %d objects: %v", n, filestest.Files(t, e.dir))
	}
	for range 2 { // the second is a no-op
		if err := e.svc.Delete(t.Context(), f.ID); err != nil {
			t.Fatal(err)
		}
	}
	wantEmpty(t, e.dir)
	_, err := e.svc.Open(t.Context(), alice, f.ID, true)
	wantCode(t, err, protocol.CodeNotFound)
	if s := e.svc.Stats(); s.Deleted != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestPrune(t *testing.T) {
	e := newEnv(t, files.Config{})
	var sent []files.File
	for i := range 4 {
		f := e.mustPut(t, alice, "general", fmt.Sprintf("%d.png", i), filestest.PNG(20, 20, false))
		if _, err := e.svc.Resolve(t.Context(), "alice", "general", fmt.Sprint("m", i), []string{f.ID}); err != nil {
			t.Fatal(err)
		}
		sent = append(sent, f)
	}
	pending := e.mustPut(t, alice, "general", "pending.txt", []byte("not sent yet"))
	elsewhere := e.mustPut(t, alice, "random", "r.txt", []byte("another room"))
	e.svc.Resolve(t.Context(), "alice", "random", "r1", []string{elsewhere.ID})

	// Messages 0 and 1 were dropped from history; 2 and 3 remain.
	kept := map[string]bool{sent[2].ID: true, sent[3].ID: true}
	n, err := e.svc.Prune(t.Context(), "general", func(id string) bool { return kept[id] })
	if err != nil || n != 2 {
		t.Fatalf("Prune = %d, %v; want 2", n, err)
	}
	for i, f := range sent {
		if exists(t, e, f.ID) != (i >= 2) {
			t.Errorf("file %d: exists %v", i, !(i >= 2))
		}
	}
	for _, f := range []files.File{pending, elsewhere} {
		if !exists(t, e, f.ID) {
			t.Errorf("%s was pruned", f.Name)
		}
	}
	// The room goes: every file sent there goes with it.
	if n, err := e.svc.Prune(t.Context(), "general", func(string) bool { return false }); err != nil || n != 2 {
		t.Fatalf("Prune all = %d, %v", n, err)
	}
	for _, k := range filestest.Files(t, e.dir) {
		if strings.Contains(k, sent[2].ID) || strings.Contains(k, sent[3].ID) {
			t.Errorf("%s left behind", k)
		}
	}
}

func TestSweep(t *testing.T) {
	e := newEnv(t, files.Config{Grace: time.Hour})
	never := e.mustPut(t, alice, "general", "never.png", filestest.PNG(20, 20, false))
	sent := e.mustPut(t, alice, "general", "sent.txt", []byte("sent"))
	if _, err := e.svc.Resolve(t.Context(), "alice", "general", "m1", []string{sent.ID}); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Hour + files.SweepMargin - time.Second)
	young := e.mustPut(t, alice, "general", "young.txt", []byte("just now"))
	if n, err := e.svc.Sweep(t.Context()); err != nil || n != 0 {
		t.Fatalf("Sweep before the margin = %d, %v", n, err)
	}
	e.clock.Advance(2 * time.Second)
	if n, err := e.svc.Sweep(t.Context()); err != nil || n != 1 {
		t.Fatalf("Sweep = %d, %v; want 1", n, err)
	}
	if exists(t, e, never.ID) {
		t.Error("the upload never sent is still there")
	}
	for _, f := range []files.File{sent, young} {
		if !exists(t, e, f.ID) {
			t.Errorf("%s was swept", f.Name)
		}
	}
	for _, k := range filestest.Files(t, e.dir) {
		if strings.Contains(k, never.ID) {
			t.Errorf("%s left behind", k)
		}
	}
}

// TestSweepClearsCrashLeftovers: an upload cut short by a crash, before
// its metadata was written, leaves a marker and data that Sweep removes.
func TestSweepClearsCrashLeftovers(t *testing.T) {
	e := newEnv(t, files.Config{Grace: time.Hour})
	f := e.mustPut(t, alice, "general", "a.txt", []byte("crashed"))
	for _, k := range filestest.Files(t, e.dir) {
		if strings.HasPrefix(k, "meta/") || strings.HasPrefix(k, "rooms/") {
			os.Remove(filepath.Join(e.dir, k)) // as if the crash came before them
		}
	}
	e.clock.Advance(2*time.Hour + time.Minute)
	if _, err := e.svc.Sweep(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, k := range filestest.Files(t, e.dir) {
		if strings.Contains(k, f.ID) {
			t.Errorf("%s left behind", k)
		}
	}
}

// exists reports whether file id can be opened; not_found is false.
func exists(t *testing.T, e *env, id string) bool {
	t.Helper()
	d, err := e.svc.Open(t.Context(), alice, id, false)
	if code, _ := protocol.CodeOf(err); err != nil && code == protocol.CodeNotFound {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	d.Body.Close()
	return true
}
