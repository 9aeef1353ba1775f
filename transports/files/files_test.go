package files

import (
	"bytes"
	"image"
	_ "image/jpeg"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/core/files"
	"github.com/chatd/chatd/core/files/filestest"
	"github.com/chatd/chatd/core/protocol"
)

func TestUploadDownloadPNG(t *testing.T) {
	n := newNode(t, files.Config{})
	data := filestest.PNG(640, 400, false)
	f := n.mustUpload(t, "alice", "general", "Ferien 🏖.png", "image/png", data)
	if f.Type != "image/png" || f.Width != 640 || f.Height != 400 || f.Size != int64(len(data)) ||
		f.Name != "Ferien 🏖.png" || f.URL != "/v1/files/"+f.ID || f.ThumbURL != f.URL+"/thumb" {
		t.Fatalf("answer %+v", f)
	}

	resp, body := n.get(t, "bob", f.URL, nil)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, data) {
		t.Fatalf("download: %s, %d bytes", resp.Status, len(body))
	}
	h := resp.Header
	for k, want := range map[string]string{
		"Content-Type":            "image/png",
		"X-Content-Type-Options":  "nosniff",
		"Content-Security-Policy": "default-src 'none'; sandbox",
		"Cache-Control":           "private, max-age=31536000, immutable",
		"Content-Length":          strconv.Itoa(len(data)),
		"Accept-Ranges":           "bytes",
	} {
		if got := h.Get(k); got != want {
			t.Errorf("%s: %q; want %q", k, got, want)
		}
	}
	disp, params, err := mime.ParseMediaType(h.Get("Content-Disposition"))
	if err != nil || disp != "inline" || params["filename"] != "Ferien 🏖.png" {
		t.Errorf("Content-Disposition %q: %s %v %v", h.Get("Content-Disposition"), disp, params, err)
	}

	resp, body = n.get(t, "alice", f.ThumbURL, nil)
	img, format, err := image.Decode(bytes.NewReader(body))
	if resp.StatusCode != http.StatusOK || err != nil || format != "jpeg" || resp.Header.Get("Content-Type") != "image/jpeg" {
		t.Fatalf("thumb: %s %v %s %q", resp.Status, err, format, resp.Header.Get("Content-Type"))
	}
	if b := img.Bounds(); b.Dx() != 320 || b.Dy() != 200 {
		t.Fatalf("thumbnail is %v; want 320×200", b)
	}

	// Ranges, conditional requests and HEAD.
	resp, body = n.get(t, "alice", f.URL, http.Header{"Range": {"bytes=8-23"}})
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, data[8:24]) {
		t.Fatalf("range: %s %q", resp.Status, body)
	}
	etag := h.Get("ETag")
	resp, _ = n.get(t, "alice", f.URL, http.Header{"If-None-Match": {etag}})
	if etag == "" || resp.StatusCode != http.StatusNotModified {
		t.Fatalf("If-None-Match %q: %s", etag, resp.Status)
	}
	resp, body = n.do(t, "alice", http.MethodHead, f.URL, "", nil, nil)
	if resp.StatusCode != http.StatusOK || len(body) != 0 || resp.Header.Get("Content-Length") != strconv.Itoa(len(data)) {
		t.Fatalf("HEAD: %s %q", resp.Status, resp.Header.Get("Content-Length"))
	}
}

// TestSniffingDecides: the part's Content-Type and the name mean nothing.
func TestSniffingDecides(t *testing.T) {
	n := newNode(t, files.Config{})
	png := n.mustUpload(t, "alice", "general", "notes.txt", "text/plain", filestest.PNG(20, 10, false))
	if png.Type != "image/png" || png.Width != 20 || png.ThumbURL == "" {
		t.Fatalf("a PNG sent as text/plain: %+v", png)
	}
	resp, _ := n.get(t, "alice", png.URL, nil)
	if ct, cd := resp.Header.Get("Content-Type"), resp.Header.Get("Content-Disposition"); ct != "image/png" || !strings.HasPrefix(cd, "inline;") {
		t.Fatalf("served as %q, %q", ct, cd)
	}
	html := n.mustUpload(t, "alice", "general", "cat.png", "image/png", []byte("<html><body><script>alert(document.cookie)</script>"))
	if html.Type != "application/octet-stream" || html.ThumbURL != "" || html.Width != 0 {
		t.Fatalf("HTML sent as image/png: %+v", html)
	}
	wantAttachment(t, n, html, "cat.png")
}

// TestScriptsDownloadAsAttachments: SVG with a script and HTML are
// attachments, octet-stream, nosniff, sandboxed.
func TestScriptsDownloadAsAttachments(t *testing.T) {
	n := newNode(t, files.Config{})
	for name, data := range map[string]string{
		"logo.svg":  `<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><script>alert(2)</script></svg>`,
		"page.html": "<!doctype html><h1>hi</h1><script>fetch('/v1/me')</script>",
		"x.xml":     `<?xml version="1.0"?><html xmlns="http://www.w3.org/1999/xhtml"><script>alert(3)</script></html>`,
	} {
		f := n.mustUpload(t, "alice", "general", name, "image/svg+xml", []byte(data))
		wantAttachment(t, n, f, name)
	}
}

func wantAttachment(t *testing.T, n *node, f files.File, name string) {
	t.Helper()
	resp, _ := n.get(t, "bob", f.URL, nil)
	h := resp.Header
	disp, params, err := mime.ParseMediaType(h.Get("Content-Disposition"))
	if resp.StatusCode != http.StatusOK || err != nil || disp != "attachment" || params["filename"] != name {
		t.Errorf("%s: %s, Content-Disposition %q", name, resp.Status, h.Get("Content-Disposition"))
	}
	if h.Get("Content-Type") != "application/octet-stream" || h.Get("X-Content-Type-Options") != "nosniff" ||
		!strings.Contains(h.Get("Content-Security-Policy"), "sandbox") {
		t.Errorf("%s: headers %v", name, h)
	}
}

func TestSizeCap(t *testing.T) {
	c := newCluster(t)
	n := c.node(t, files.Config{MaxSize: 64 << 10}, Config{})
	resp, body := n.upload(t, "alice", roomField("general"), filePart("big.bin", "", make([]byte, 100<<10)))
	wantError(t, "a file past the cap", resp, body, http.StatusRequestEntityTooLarge, protocol.CodeTooLarge)
	wantEmpty(t, c.dir)
	n.mustUpload(t, "alice", "general", "ok.bin", "", make([]byte, 64<<10))
}

func TestQuota(t *testing.T) {
	n := newNode(t, files.Config{MaxSize: 10 << 10, Quota: 15 << 10})
	n.mustUpload(t, "alice", "general", "a", "", make([]byte, 10<<10))
	resp, body := n.upload(t, "alice", roomField("general"), filePart("b", "", make([]byte, 6<<10)))
	wantError(t, "past the quota", resp, body, http.StatusRequestEntityTooLarge, protocol.CodeTooLarge)
	if !strings.Contains(string(body), "quota") {
		t.Fatalf("the error does not name the quota: %s", body)
	}
	n.mustUpload(t, "alice", "general", "c", "", make([]byte, 5<<10))
}

func TestRateLimit(t *testing.T) {
	n := newNode(t, files.Config{Rate: 0.001, Burst: 2})
	n.mustUpload(t, "alice", "general", "1", "", []byte("one"))
	n.mustUpload(t, "alice", "general", "2", "", []byte("two"))
	resp, body := n.upload(t, "alice", roomField("general"), filePart("3", "", []byte("three")))
	wantError(t, "the third upload", resp, body, http.StatusTooManyRequests, protocol.CodeRateLimited)
	if resp.Header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	n.mustUpload(t, "bob", "general", "1", "", []byte("bob has his own"))
}

// TestImageBomb: refused as too_large from its header, nothing decoded.
func TestImageBomb(t *testing.T) {
	c := newCluster(t)
	n := c.node(t, files.Config{}, Config{})
	resp, body := n.upload(t, "alice", roomField("general"), filePart("bomb.png", "image/png", filestest.BombPNG(100000, 100000)))
	wantError(t, "a 100000×100000 PNG", resp, body, http.StatusRequestEntityTooLarge, protocol.CodeTooLarge)
	if s := n.svc.Stats(); s.Decodes != 0 || s.BadImages != 1 {
		t.Fatalf("stats %+v: the bomb was decoded", s)
	}
	wantEmpty(t, c.dir)
}

func TestPermissions(t *testing.T) {
	n := newNode(t, files.Config{})
	dm := auth.DMRoom("alice", "bob")
	f := n.mustUpload(t, "alice", dm, "for-bob.txt", "", []byte("hi bob"))
	if resp, body := n.get(t, "bob", f.URL, nil); resp.StatusCode != http.StatusOK || string(body) != "hi bob" {
		t.Fatalf("bob: %s %q", resp.Status, body)
	}
	resp, body := n.get(t, "carol", f.URL, nil)
	wantError(t, "carol reads a dm file", resp, body, http.StatusForbidden, protocol.CodeForbidden)
	resp, body = n.get(t, "carol", f.URL+"/thumb", nil)
	wantError(t, "carol reads its thumbnail", resp, body, http.StatusForbidden, protocol.CodeForbidden)
	resp, body = n.get(t, "bob", f.URL+"/thumb", nil)
	wantError(t, "the thumbnail of a text", resp, body, http.StatusNotFound, protocol.CodeNotFound)
	resp, body = n.get(t, "bob", "/v1/files/AAAAAAAAAAAAAAAAAAAAAA", nil)
	wantError(t, "an unknown id", resp, body, http.StatusNotFound, protocol.CodeNotFound)
	resp, body = n.get(t, "bob", "/v1/files/..%2Fmeta%2Fx", nil)
	wantError(t, "a path in the id", resp, body, http.StatusNotFound, protocol.CodeNotFound)
	resp, body = n.get(t, "", f.URL, nil)
	wantError(t, "no token", resp, body, http.StatusUnauthorized, protocol.CodeUnauthorized)
	resp, body = n.upload(t, "carol", roomField(dm), filePart("x", "", []byte("x")))
	wantError(t, "carol uploads to their dm", resp, body, http.StatusForbidden, protocol.CodeForbidden)
	resp, body = n.upload(t, "", roomField("general"), filePart("x", "", []byte("x")))
	wantError(t, "an upload without a token", resp, body, http.StatusUnauthorized, protocol.CodeUnauthorized)
}

// TestTwoNodes: node b serves, and deletes, what node a stored.
func TestTwoNodes(t *testing.T) {
	c := newCluster(t)
	a := c.node(t, files.Config{}, Config{})
	b := c.node(t, files.Config{}, Config{})
	data := filestest.JPEG(500, 300)
	f := a.mustUpload(t, "alice", "general", "a.jpg", "", data)
	if resp, body := b.get(t, "bob", f.URL, nil); resp.StatusCode != http.StatusOK || !bytes.Equal(body, data) {
		t.Fatalf("node b: %s, %d bytes", resp.Status, len(body))
	}
	if resp, _ := b.get(t, "bob", f.ThumbURL, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("node b thumb: %s", resp.Status)
	}
	if err := b.svc.Delete(t.Context(), f.ID); err != nil {
		t.Fatal(err)
	}
	resp, body := a.get(t, "alice", f.URL, nil)
	wantError(t, "a deleted file on node a", resp, body, http.StatusNotFound, protocol.CodeNotFound)
	wantEmpty(t, c.dir)
}

func TestGate(t *testing.T) {
	c := newCluster(t)
	on := c.node(t, files.Config{}, Config{})
	off := c.node(t, files.Config{}, Config{Gate: gateOff})
	f := on.mustUpload(t, "alice", "general", "a.txt", "", []byte("sent before"))
	resp, body := off.upload(t, "alice", roomField("general"), filePart("b.txt", "", []byte("b")))
	wantError(t, "an upload with files off", resp, body, http.StatusConflict, protocol.CodeFeatureDisabled)
	if resp, _ := off.get(t, "bob", f.URL, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("downloads are gated too: %s", resp.Status)
	}
}

// TestUploadStreams: a 16 MiB upload over HTTP allocates little, client
// and server together: the form is never parsed into memory.
func TestUploadStreams(t *testing.T) {
	n := newNode(t, files.Config{})
	n.mustUpload(t, "alice", "general", "warm-up", "", []byte("x"))
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		mw.WriteField("room", "general")
		w, _ := mw.CreateFormFile("file", "big.bin")
		_, err := io.CopyBuffer(w, io.LimitReader(zeros{}, 16<<20), make([]byte, 32<<10))
		if err == nil {
			err = mw.Close()
		}
		pw.CloseWithError(err)
	}()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	resp, body := n.do(t, "alice", http.MethodPost, "/v1/files", mw.FormDataContentType(), pr, nil)
	runtime.ReadMemStats(&after)
	if resp.StatusCode != http.StatusCreated || !strings.Contains(string(body), `"size":16777216`) {
		t.Fatalf("upload: %s %s", resp.Status, body)
	}
	d := after.TotalAlloc - before.TotalAlloc
	t.Logf("a 16 MiB upload allocated %d KiB", d>>10)
	if d > 2<<20 {
		t.Fatalf("a 16 MiB upload allocated %d KiB", d>>10)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }
