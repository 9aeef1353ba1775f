package featureflags

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chatd/chatd/internal/syncbuf"
)

func TestParseFile(t *testing.T) {
	flags, err := ParseFile([]byte(`{"flags":[
		{"name":"typing","enabled":true,"rollout":50},
		{"name":"transport.websocket","enabled":false},
		{"name":"presence","rollout":7}
	]}`))
	if err != nil {
		t.Fatal(err)
	}
	want := []Flag{
		{Name: Typing, Enabled: true, Rollout: 50},
		{Name: WebSocket, Enabled: false, Rollout: 100}, // rollout defaults
		{Name: Presence, Enabled: true, Rollout: 7},     // enabled defaults
	}
	if len(flags) != len(want) {
		t.Fatalf("got %+v", flags)
	}
	for i := range want {
		if flags[i] != want[i] {
			t.Errorf("flag %d = %+v, want %+v", i, flags[i], want[i])
		}
	}
	for _, c := range []struct {
		in   string
		want error
	}{
		{``, ErrInvalid},
		{`{"flags":[{"name":"typing","rollout":50}`, ErrInvalid},  // truncated
		{`{"flags":[{"name":"typing","rollot":50}]}`, ErrInvalid}, // unknown field
		{`{"flags":[{"name":"typing","rollout":101}]}`, ErrInvalid},
		{`{"flags":[{"name":"typing","rollout":"50"}]}`, ErrInvalid},
		{`{"flags":[{"name":"typing"},{"name":"typing"}]}`, ErrInvalid},
		{`{"flags":[{"name":"transport.poll","enabled":false}]}`, ErrInvalid},
		{`{"flags":[]} {}`, ErrInvalid},
		{`{"flags":[{"name":"typng"}]}`, ErrUnknownFlag},
		{`{"flags":[{"rollout":5}]}`, ErrUnknownFlag},
	} {
		if _, err := ParseFile([]byte(c.in)); !errors.Is(err, c.want) {
			t.Errorf("ParseFile(%s) = %v, want %v", c.in, err, c.want)
		}
	}
	if flags, err := ParseFile([]byte(`{}`)); err != nil || len(flags) != 0 {
		t.Errorf("empty object: %v, %v", flags, err)
	}
}

func FuzzParseFile(f *testing.F) {
	f.Add([]byte(`{"flags":[{"name":"typing","enabled":true,"rollout":50}]}`))
	f.Add([]byte(`{"flags":[{"name":"transport.poll"}]}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		flags, err := ParseFile(data)
		if err != nil {
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrUnknownFlag) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		// Whatever parses must be accepted by the store.
		if err := NewStore(Config{Logger: discard()}).Replace(flags, "fuzz"); err != nil {
			t.Fatalf("parsed %+v but Replace says %v", flags, err)
		}
	})
}

// fileEnv runs a FileSource over a temporary file until the test ends.
type fileEnv struct {
	t     *testing.T
	path  string
	store *Store
	logs  *syncbuf.Buffer
	ch    <-chan struct{}
}

func startFileSource(t *testing.T, initial string) *fileEnv {
	t.Helper()
	e := &fileEnv{t: t, path: filepath.Join(t.TempDir(), "flags.json")}
	e.write(initial)
	log, logs := newLogger()
	e.logs = logs
	e.store = NewStore(Config{Logger: log})
	ch, unsubscribe := e.store.Subscribe()
	e.ch = ch
	fs := &FileSource{Path: e.path, Target: e.store, Logger: log,
		Interval: 5 * time.Millisecond, Debounce: 10 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fs.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run returned %v", err)
			}
		case <-time.After(waitLimit):
			t.Error("Run did not stop after cancel")
		}
		unsubscribe()
	})
	return e
}

// write replaces the file's content in place, as `echo > file` does.
func (e *fileEnv) write(content string) {
	e.t.Helper()
	if err := os.WriteFile(e.path, []byte(content), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

// rename replaces the file by renaming a new one over it, as vim and
// most config-management tools do.
func (e *fileEnv) rename(content string) {
	e.t.Helper()
	tmp := e.path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		e.t.Fatal(err)
	}
	if err := os.Rename(tmp, e.path); err != nil {
		e.t.Fatal(err)
	}
}

func (e *fileEnv) waitRollout(name string, rollout int) {
	e.t.Helper()
	waitChange(e.t, e.ch, fmt.Sprintf("%s rollout %d", name, rollout), func() bool {
		f, _ := e.store.Snapshot().Get(name)
		return f.Rollout == rollout
	})
}

func TestFileSourceReloads(t *testing.T) {
	e := startFileSource(t, `{"flags":[{"name":"typing","rollout":50}]}`)
	e.waitRollout(Typing, 50)
	if a := e.store.Audit(); len(a) != 1 || a[0].Actor != "file:"+e.path {
		t.Errorf("audit = %+v", a)
	}

	e.write(`{"flags":[{"name":"typing","rollout":60},{"name":"presence","enabled":false}]}`)
	e.waitRollout(Typing, 60)
	if f, _ := e.store.Snapshot().Get(Presence); f.Enabled {
		t.Errorf("presence = %+v", f)
	}

	e.rename(`{"flags":[{"name":"typing","rollout":70}]}`)
	e.waitRollout(Typing, 70)
	if f, _ := e.store.Snapshot().Get(Presence); !f.Enabled {
		t.Errorf("presence = %+v, want back at its default once the file drops it", f)
	}
}

func TestFileSourceKeepsLastGood(t *testing.T) {
	e := startFileSource(t, `{"flags":[{"name":"typing","rollout":40}]}`)
	e.waitRollout(Typing, 40)
	good := e.store.Snapshot()

	e.write(`{"flags":[{"name":"typing","rollout":`)
	eventually(t, "the malformed file to be logged", func() bool {
		return count(e.logs, "flags file not applied") > 0
	})
	if e.store.Snapshot() != good {
		t.Error("a malformed file changed the flags")
	}

	e.rename(`{"flags":[{"name":"typing","rollout":41},{"name":"bogus"}]}`)
	eventually(t, "the unknown name to be logged", func() bool {
		return count(e.logs, "unknown flag") > 0
	})
	if e.store.Snapshot() != good {
		t.Error("a file with an unknown flag changed the flags")
	}

	if err := os.Remove(e.path); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the missing file to be logged", func() bool {
		return count(e.logs, "no such file") > 0
	})
	if e.store.Snapshot() != good {
		t.Error("removing the file changed the flags")
	}

	e.write(`{"flags":[{"name":"typing","rollout":42}]}`)
	e.waitRollout(Typing, 42)
}

// Rewriting the file with the content last applied does not undo an admin
// change made since; new content does.
func TestFileSourceLoadSkipsSameContent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "flags.json")
	const content = `{"flags":[{"name":"typing","rollout":40}]}`
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	s := NewStore(Config{Logger: discard()})
	fs := &FileSource{Path: path, Target: s}
	if err := fs.Load(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update(Typing, true, 90, "admin:alice"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := fs.Load(); err != nil {
		t.Fatal(err)
	}
	if f, _ := s.Snapshot().Get(Typing); f.Rollout != 90 || len(s.Audit()) != 2 {
		t.Errorf("same content undid the admin change: %+v, audit %+v", f, s.Audit())
	}
	if err := os.WriteFile(path, []byte(`{"flags":[{"name":"typing","rollout":41}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := fs.Load(); err != nil {
		t.Fatal(err)
	}
	if f, _ := s.Snapshot().Get(Typing); f.Rollout != 41 {
		t.Errorf("new content not applied: %+v", f)
	}
}

func TestWatchFile(t *testing.T) {
	dir := t.TempDir()
	s := NewStore(Config{Logger: discard()})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// A first load that fails is returned at once: a bad --flags stops startup.
	err := WatchFile(ctx, filepath.Join(dir, "missing.json"), s, discard())
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"flags":[{"name":"typing","rollout":500}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WatchFile(ctx, bad, s, discard()); !errors.Is(err, ErrInvalid) {
		t.Errorf("invalid file: %v", err)
	}

	// A good file is applied before WatchFile blocks, and cancel stops it.
	good := filepath.Join(dir, "good.json")
	if err := os.WriteFile(good, []byte(`{"flags":[{"name":"read_receipts","rollout":12}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	ch, unsubscribe := s.Subscribe()
	defer unsubscribe()
	done := make(chan error, 1)
	go func() { done <- WatchFile(ctx, good, s, discard()) }()
	waitChange(t, ch, "read_receipts rollout 12", func() bool {
		f, _ := s.Snapshot().Get(ReadReceipts)
		return f.Rollout == 12
	})
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("WatchFile returned %v after cancel", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("WatchFile did not stop after cancel")
	}
}
