package files_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	_ "image/jpeg"
	_ "image/png"
	"io"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/core/files"
	"github.com/chatd/chatd/core/files/filestest"
	"github.com/chatd/chatd/core/protocol"
)

var (
	alice = auth.Identity{User: "alice", Name: "Alice"}
	bob   = auth.Identity{User: "bob", Name: "Bob"}
)

// env is one Service on a fresh directory.
type env struct {
	dir   string
	clock *filestest.Clock
	svc   *files.Service
}

func newEnv(t *testing.T, cfg files.Config) *env {
	t.Helper()
	e := &env{dir: t.TempDir(), clock: filestest.NewClock()}
	if cfg.Now == nil {
		cfg.Now = e.clock.Now
	}
	e.svc = files.New(openStorage(t, e.dir), cfg)
	return e
}

func (e *env) put(t *testing.T, who auth.Identity, room, name string, data []byte) (files.File, error) {
	t.Helper()
	return e.svc.Put(t.Context(), who, room, name, bytes.NewReader(data))
}

func (e *env) mustPut(t *testing.T, who auth.Identity, room, name string, data []byte) files.File {
	t.Helper()
	f, err := e.put(t, who, room, name, data)
	if err != nil {
		t.Fatalf("Put %s: %v", name, err)
	}
	return f
}

// read downloads a file (or its thumbnail) whole.
func (e *env) read(t *testing.T, who auth.Identity, id string, thumb bool) (*files.Download, []byte) {
	t.Helper()
	d, err := e.svc.Open(t.Context(), who, id, thumb)
	if err != nil {
		t.Fatalf("Open %s: %v", id, err)
	}
	defer d.Body.Close()
	b, err := io.ReadAll(d.Body)
	if err != nil {
		t.Fatal(err)
	}
	return d, b
}

func wantCode(t *testing.T, err error, code protocol.Code) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error; want %s", code)
	}
	if got, _ := protocol.CodeOf(err); got != code {
		t.Fatalf("error %v has code %s; want %s", err, got, code)
	}
}

func wantEmpty(t *testing.T, dir string) {
	t.Helper()
	if left := filestest.Files(t, dir); len(left) > 0 {
		t.Fatalf("the bucket still holds %v", left)
	}
}

func TestPutPNG(t *testing.T) {
	e := newEnv(t, files.Config{})
	data := filestest.PNG(640, 400, false)
	f := e.mustPut(t, alice, "general", "dir/../Holiday photo.png", data)
	if f.Type != files.TypePNG || f.Width != 640 || f.Height != 400 || f.Size != int64(len(data)) || f.Name != "Holiday photo.png" {
		t.Fatalf("file = %+v", f)
	}
	if !files.ValidID(f.ID) || f.URL != "/v1/files/"+f.ID || f.ThumbURL != f.URL+"/thumb" {
		t.Fatalf("id or urls wrong: %+v", f)
	}
	d, got := e.read(t, alice, f.ID, false)
	if !bytes.Equal(got, data) || d.Type != files.TypePNG || !d.Inline || d.Size != int64(len(data)) {
		t.Fatalf("download: %d bytes, %+v", len(got), d)
	}
	d, thumb := e.read(t, alice, f.ID, true)
	img, format, err := image.Decode(bytes.NewReader(thumb))
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 320 || b.Dy() != 200 || format != "jpeg" || d.Type != files.TypeJPEG {
		t.Fatalf("thumbnail is %v %s (%s); want 320×200 jpeg", b, format, d.Type)
	}
	if s := e.svc.Stats(); s.Uploads != 1 || s.Decodes != 1 || s.Bytes != int64(len(data)) {
		t.Fatalf("stats %+v", s)
	}
}

func TestThumbnailKeepsTransparencyAndNeverUpscales(t *testing.T) {
	e := newEnv(t, files.Config{})
	f := e.mustPut(t, alice, "general", "a.png", filestest.PNG(100, 50, true))
	d, thumb := e.read(t, alice, f.ID, true)
	img, format, err := image.Decode(bytes.NewReader(thumb))
	if err != nil {
		t.Fatal(err)
	}
	if format != "png" || d.Type != files.TypePNG || img.Bounds().Dx() != 100 || img.Bounds().Dy() != 50 {
		t.Fatalf("thumbnail %s %v; want a 100×50 png", format, img.Bounds())
	}
	if _, _, _, a := img.At(10, 10).RGBA(); a != 0 {
		t.Fatalf("the transparent half has alpha %d", a)
	}
	if !strings.HasSuffix(d.Name, ".thumb.png") {
		t.Fatalf("thumbnail name %q", d.Name)
	}
}

func TestImageFormats(t *testing.T) {
	webp, err := os.ReadFile("testdata/blue-purple-pink.lossy.webp")
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, files.Config{})
	for _, tc := range []struct {
		name string
		data []byte
		typ  string
		w, h int
	}{
		{"a.jpg", filestest.JPEG(400, 800), files.TypeJPEG, 400, 800},
		{"b.gif", filestest.GIF(30, 20), files.TypeGIF, 30, 20},
		{"c.webp", webp, files.TypeWebP, 150, 100},
	} {
		f := e.mustPut(t, alice, "general", tc.name, tc.data)
		if f.Type != tc.typ || f.Width != tc.w || f.Height != tc.h || f.ThumbURL == "" {
			t.Errorf("%s: %+v", tc.name, f)
		}
	}
}

func TestSniffNotTheName(t *testing.T) {
	e := newEnv(t, files.Config{})
	for _, tc := range []struct {
		name   string
		data   []byte
		typ    string
		inline bool
	}{
		{"notes.txt", filestest.PNG(8, 8, false), files.TypePNG, true},
		{"cat.png", []byte("<!DOCTYPE html><html><script>alert(1)</script></html>"), files.TypeBinary, false},
		{"logo.svg", []byte(`<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>`), files.TypeBinary, false},
		{"x.gif", []byte(`<?xml version="1.0"?><svg/>`), files.TypeBinary, false},
		{"readme.html", []byte("just some words\nand more"), files.TypeText, false},
		{"doc.pdf", []byte("%PDF-1.7\n..."), files.TypePDF, false},
		{"a.exe", []byte("MZ\x90\x00\x03\x00\x00\x00"), files.TypeBinary, false},
	} {
		f := e.mustPut(t, alice, "general", tc.name, tc.data)
		d, _ := e.read(t, alice, f.ID, false)
		if f.Type != tc.typ || d.Type != tc.typ || d.Inline != tc.inline {
			t.Errorf("%s: type %q (served %q, inline %v); want %q, inline %v", tc.name, f.Type, d.Type, d.Inline, tc.typ, tc.inline)
		}
		if (f.ThumbURL != "") != tc.inline {
			t.Errorf("%s: thumb_url %q", tc.name, f.ThumbURL)
		}
	}
}

func TestSizeCap(t *testing.T) {
	e := newEnv(t, files.Config{MaxSize: 1000})
	e.mustPut(t, alice, "general", "ok.bin", make([]byte, 1000))
	wantCount := len(filestest.Files(t, e.dir))
	_, err := e.put(t, alice, "general", "big.bin", make([]byte, 1001))
	wantCode(t, err, protocol.CodeTooLarge)
	if n := len(filestest.Files(t, e.dir)); n != wantCount {
		t.Fatalf("a refused upload left files: %v", filestest.Files(t, e.dir))
	}
	if s := e.svc.Stats(); s.TooLarge != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestSizeCapLeavesNothing(t *testing.T) {
	e := newEnv(t, files.Config{MaxSize: 100 << 10})
	// An endless body: the cap, not the end of the body, stops it.
	_, err := e.svc.Put(t.Context(), alice, "general", "zero", io.LimitReader(zeros{}, 1<<40))
	wantCode(t, err, protocol.CodeTooLarge)
	wantEmpty(t, e.dir)
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func TestQuota(t *testing.T) {
	e := newEnv(t, files.Config{MaxSize: 2000, Quota: 3000})
	e.mustPut(t, alice, "general", "a", make([]byte, 2000))
	_, err := e.put(t, alice, "general", "b", make([]byte, 1001))
	wantCode(t, err, protocol.CodeTooLarge)
	if !strings.Contains(err.Error(), "quota") {
		t.Fatalf("error %v does not name the quota", err)
	}
	e.mustPut(t, bob, "general", "b", make([]byte, 2000)) // bob has his own
	c := e.mustPut(t, alice, "general", "c", make([]byte, 1000))
	_, err = e.put(t, alice, "general", "d", []byte("x"))
	wantCode(t, err, protocol.CodeTooLarge)
	if err := e.svc.Delete(t.Context(), c.ID); err != nil {
		t.Fatal(err)
	}
	e.mustPut(t, alice, "general", "d", make([]byte, 1000))
}

// gatedReader blocks its first Read until open closes, after saying so
// on reading.
type gatedReader struct {
	r       io.Reader
	reading chan<- struct{}
	open    <-chan struct{}
	started bool
}

func (g *gatedReader) Read(p []byte) (int, error) {
	if !g.started {
		g.started = true
		g.reading <- struct{}{}
		<-g.open
	}
	return g.r.Read(p)
}

// One user's uploads at once share the quota: each reserves its size
// before it reads a byte, so that of ten at once of 2,000 bytes each,
// under a quota of 10,000, five are stored and five refused before they
// read anything, where each used to see the quota as the stored files
// left it and all ten were stored. None fails otherwise (a listing that
// met another upload's temporary file failed with an internal error).
func TestQuotaParallel(t *testing.T) {
	e := newEnv(t, files.Config{MaxSize: 10000, Quota: 10000, Burst: 10})
	reading := make(chan struct{}, 10)
	open := make(chan struct{})
	errs := make(chan error, 10)
	for i := range 10 {
		go func() {
			body := &gatedReader{r: bytes.NewReader(make([]byte, 2000)), reading: reading, open: open}
			_, err := e.svc.PutSized(t.Context(), alice, "general", fmt.Sprint("p", i), body, 2000)
			errs <- err
		}()
	}
	refused, started := 0, 0
	for refused+started < 10 {
		select {
		case <-reading:
			started++
		case err := <-errs:
			wantCode(t, err, protocol.CodeTooLarge)
			refused++
		}
	}
	close(open)
	for range started {
		if err := <-errs; err != nil {
			t.Fatalf("an upload within the quota: %v", err)
		}
	}
	if started != 5 || refused != 5 {
		t.Fatalf("%d uploads stored and %d refused, want 5 and 5", started, refused)
	}
}

// holdMeta holds the first metadata write (the upload's data is
// committed by then) until release closes.
type holdMeta struct {
	files.Storage
	reached chan struct{}
	release chan struct{}
	held    atomic.Bool
}

func (h *holdMeta) Create(ctx context.Context, key, contentType string) (files.Writer, error) {
	if strings.HasPrefix(key, "meta/") && h.held.CompareAndSwap(false, true) {
		close(h.reached)
		<-h.release
	}
	return h.Storage.Create(ctx, key, contentType)
}

// An upload's reservation goes back as its data is committed: an upload
// that starts after that, while the first still writes its metadata,
// counts the first file once. A file of 6,000 bytes and then one of
// 4,000 fill a 10,000-byte quota exactly; the second was refused when the
// first was counted stored and reserved at once.
func TestQuotaCountsACommittedFileOnce(t *testing.T) {
	st := &holdMeta{Storage: openStorage(t, t.TempDir()), reached: make(chan struct{}), release: make(chan struct{})}
	svc := files.New(st, files.Config{MaxSize: 10000, Quota: 10000, Burst: 10})
	first := make(chan error, 1)
	go func() {
		_, err := svc.PutSized(t.Context(), alice, "general", "a", bytes.NewReader(make([]byte, 6000)), 6000)
		first <- err
	}()
	<-st.reached
	_, err := svc.PutSized(t.Context(), alice, "general", "b", bytes.NewReader(make([]byte, 4000)), 4000)
	close(st.release)
	if err := <-first; err != nil {
		t.Fatalf("the first upload: %v", err)
	}
	if err != nil {
		t.Fatalf("the second upload, which fills the quota exactly: %v", err)
	}
}

func TestRateLimit(t *testing.T) {
	e := newEnv(t, files.Config{Rate: 1.0 / 60, Burst: 2})
	e.mustPut(t, alice, "general", "1", []byte("one"))
	e.mustPut(t, alice, "general", "2", []byte("two"))
	_, err := e.put(t, alice, "general", "3", []byte("three"))
	wantCode(t, err, protocol.CodeRateLimited)
	e.mustPut(t, bob, "general", "1", []byte("bob's"))
	e.clock.Advance(61 * time.Second)
	e.mustPut(t, alice, "general", "3", []byte("three"))
	if s := e.svc.Stats(); s.Limited != 1 || s.Uploads != 4 {
		t.Fatalf("stats %+v", s)
	}
}

// TestImageBomb: a tiny PNG that declares 100000×100000 pixels (40 GB
// decoded) is refused from its header; no image is decoded at all.
func TestImageBomb(t *testing.T) {
	e := newEnv(t, files.Config{})
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"bomb.png", filestest.BombPNG(100000, 100000)},
		{"wide.png", filestest.BombPNG(20000, 10)},                  // a side past 16384
		{"40mp.png", filestest.BombPNG(8000, 5001)},                 // past 40 megapixels
		{"bomb.gif", []byte("GIF89a\xff\xff\xff\xff\x00\x00\x00;")}, // 65535×65535
	} {
		_, err := e.put(t, alice, "general", tc.name, tc.data)
		wantCode(t, err, protocol.CodeTooLarge)
		if !strings.Contains(err.Error(), "pixels") {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	if s := e.svc.Stats(); s.Decodes != 0 || s.BadImages != 4 {
		t.Fatalf("stats %+v: nothing should have been decoded", s)
	}
	wantEmpty(t, e.dir)
}

func TestBrokenImage(t *testing.T) {
	e := newEnv(t, files.Config{})
	good := filestest.PNG(50, 50, false)
	for _, data := range [][]byte{
		[]byte("\x89PNG\r\n\x1a\nnot a png at all"),
		good[:len(good)/2],                           // the header decodes, the pixels do not
		append([]byte("\xff\xd8\xff"), "garbage"...), // JPEG
		filestest.BombPNG(0, 10),                     // no pixels
	} {
		_, err := e.put(t, alice, "general", "x", data)
		wantCode(t, err, protocol.CodeBadRequest)
	}
	wantEmpty(t, e.dir)
}

func TestPutRefusals(t *testing.T) {
	e := newEnv(t, files.Config{})
	_, err := e.put(t, alice, "general", "empty", nil)
	wantCode(t, err, protocol.CodeBadRequest)
	_, err = e.put(t, alice, "bad room", "x", []byte("x"))
	wantCode(t, err, protocol.CodeBadRequest)
	_, err = e.put(t, alice, "dm:bob:carol", "x", []byte("x"))
	wantCode(t, err, protocol.CodeForbidden)
	limited := auth.Identity{User: "carol", Rooms: []string{"team-*"}}
	_, err = e.put(t, limited, "general", "x", []byte("x"))
	wantCode(t, err, protocol.CodeForbidden)
	e.mustPut(t, limited, "team-a", "x", []byte("x"))

	broken := errors.New("connection reset")
	_, err = e.svc.Put(t.Context(), alice, "general", "x", io.MultiReader(bytes.NewReader(make([]byte, 5000)), errReader{broken}))
	if !errors.Is(err, files.ErrBody) || !errors.Is(err, broken) {
		t.Fatalf("a body that breaks: %v; want ErrBody wrapping the cause", err)
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func TestOpenPermissions(t *testing.T) {
	e := newEnv(t, files.Config{})
	dm := auth.DMRoom("alice", "bob")
	f := e.mustPut(t, alice, dm, "secret.txt", []byte("for bob"))
	if _, b := e.read(t, bob, f.ID, false); string(b) != "for bob" {
		t.Fatalf("bob reads %q", b)
	}
	_, err := e.svc.Open(t.Context(), auth.Identity{User: "eve"}, f.ID, false)
	wantCode(t, err, protocol.CodeForbidden)
	_, err = e.svc.Open(t.Context(), bob, f.ID, true) // text has no thumbnail
	wantCode(t, err, protocol.CodeNotFound)
	for _, id := range []string{"", "nope", strings.Repeat("A", 22), "../../meta/xxxxxxxxxxxxxxxx"} {
		_, err = e.svc.Open(t.Context(), bob, id, false)
		wantCode(t, err, protocol.CodeNotFound)
	}
}

// denyReads is an Authorizer that lets anyone write and nobody read.
type denyReads struct{}

func (denyReads) CanWrite(context.Context, auth.Identity, string) error { return nil }
func (denyReads) CanRead(_ context.Context, _ auth.Identity, room string) error {
	return protocol.Errorf(protocol.CodeForbidden, "not a member of %s", room)
}

func TestAuthorizerDecides(t *testing.T) {
	e := newEnv(t, files.Config{Authorizer: denyReads{}})
	f := e.mustPut(t, alice, "general", "a.txt", []byte("hello"))
	_, err := e.svc.Open(t.Context(), alice, f.ID, false)
	wantCode(t, err, protocol.CodeForbidden)
}

// TestTwoServicesOneDirectory: two nodes on one bucket; either serves,
// resolves and deletes what the other stored.
func TestTwoServicesOneDirectory(t *testing.T) {
	dir := t.TempDir()
	a := files.New(openStorage(t, dir), files.Config{})
	b := files.New(openStorage(t, dir), files.Config{})
	data := filestest.PNG(64, 64, false)
	f, err := a.Put(t.Context(), alice, "general", "a.png", bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	d, err := b.Open(t.Context(), bob, f.ID, false)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(d.Body)
	d.Body.Close()
	if !bytes.Equal(got, data) {
		t.Fatal("node b serves other bytes")
	}
	fs, err := b.Resolve(t.Context(), "alice", "general", "m1", []string{f.ID})
	if err != nil || len(fs) != 1 || fs[0] != f {
		t.Fatalf("node b resolves %+v, %v; want %+v", fs, err, f)
	}
	if err := b.Delete(t.Context(), f.ID); err != nil {
		t.Fatal(err)
	}
	_, err = a.Open(t.Context(), alice, f.ID, false)
	wantCode(t, err, protocol.CodeNotFound)
	wantEmpty(t, dir)
}

// TestEXIFOrientation: a phone photo stored sideways (EXIF orientation 6)
// gets the dimensions and the thumbnail of the photo as shown.
func TestEXIFOrientation(t *testing.T) {
	e := newEnv(t, files.Config{})
	f := e.mustPut(t, alice, "general", "IMG_0001.jpg", filestest.WithOrientation(filestest.MarkedJPEG(400, 200), 6))
	if f.Width != 200 || f.Height != 400 {
		t.Fatalf("dimensions %d×%d; want 200×400, as shown", f.Width, f.Height)
	}
	_, thumb := e.read(t, alice, f.ID, true)
	img, _, err := image.Decode(bytes.NewReader(thumb))
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 160 || b.Dy() != 320 {
		t.Fatalf("thumbnail %v; want 160×320", b)
	}
	// The red quarter, top left as stored, is top right once turned.
	red := func(x, y int) bool { r, _, b, _ := img.At(x, y).RGBA(); return r > 0xc000 && b < 0x4000 }
	if !red(140, 20) || red(20, 20) || red(140, 300) {
		t.Fatal("the thumbnail is not turned right")
	}
}

// openStorage opens a file:// bucket in dir and closes it when the test
// ends.
func openStorage(t testing.TB, dir string) files.Storage {
	t.Helper()
	u, err := files.DirURL(dir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := files.OpenStorage(t.Context(), u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestPutStreams: a 16 MiB upload allocates a small, fixed amount: the
// file goes through one buffer, never whole into memory.
func TestPutStreams(t *testing.T) {
	e := newEnv(t, files.Config{})
	e.mustPut(t, alice, "general", "warm-up", []byte("x"))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f, err := e.svc.Put(t.Context(), alice, "general", "big.bin", io.LimitReader(zeros{}, 16<<20))
	runtime.ReadMemStats(&after)
	if err != nil || f.Size != 16<<20 {
		t.Fatalf("Put = %+v, %v", f, err)
	}
	d := after.TotalAlloc - before.TotalAlloc
	t.Logf("a 16 MiB upload allocated %d KiB", d>>10)
	if d > 1<<20 {
		t.Fatalf("a 16 MiB upload allocated %d KiB", d>>10)
	}
}
