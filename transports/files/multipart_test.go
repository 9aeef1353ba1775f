package files

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/chatd/chatd/core/files"
	"github.com/chatd/chatd/core/protocol"
	"github.com/chatd/chatd/transports/httpx"
)

// TestMalformedForms: every broken form gets a 400 that says what is
// wrong, and leaves nothing in the bucket.
func TestMalformedForms(t *testing.T) {
	c := newCluster(t)
	n := c.node(t, files.Config{}, Config{})
	file := filePart("a.txt", "", []byte("hello"))
	raw := func(body string) (string, io.Reader) {
		return "multipart/form-data; boundary=B", strings.NewReader(strings.ReplaceAll(body, "\n", "\r\n"))
	}
	manyFields := make([]part, 0, 20)
	for i := range 20 {
		manyFields = append(manyFields, part{name: fmt.Sprint("f", i), data: []byte("x")})
	}
	formOf := func(parts ...part) (string, io.Reader) {
		ct, b := form(t, parts...)
		return ct, bytes.NewReader(b)
	}
	wholeCT, whole := form(t, roomField("general"), filePart("a", "", make([]byte, 50000)))
	for _, tc := range []struct {
		what string
		ct   string
		body io.Reader
		says string
	}{
		{"JSON", "application/json", strings.NewReader(`{"room":"general"}`), "multipart/form-data"},
		{"no boundary", "multipart/form-data", strings.NewReader("x"), "boundary"},
		{"no content type", "", strings.NewReader("x"), "multipart/form-data"},
		{"not multipart inside", "multipart/form-data; boundary=B", strings.NewReader("just text"), "multipart"},
		{"no file part", "", nil, "no file part"},
		{"no room", "", nil, "room field"},
		{"room after the file", "", nil, "room field"},
		{"two file parts", "", nil, "one file part"},
		{"a file part by another name", "", nil, `named \"file\"`},
		{"two rooms", "", nil, "two room fields"},
		{"an empty room", "", nil, "room field is empty"},
		{"a long room field", "", nil, "longer than"},
		{"too many parts", "", nil, "more than 16 parts"},
		{"an empty file", "", nil, "empty"},
		{"a bad room name", "", nil, "room name"},
		{"cut short", "", nil, "cut short"},
		{"a huge part header", "", nil, "pass 65536 bytes"},
	} {
		ct, body := tc.ct, tc.body
		switch tc.what {
		case "no file part":
			ct, body = formOf(roomField("general"))
		case "no room":
			ct, body = formOf(file)
		case "room after the file":
			ct, body = formOf(file, roomField("general"))
		case "two file parts":
			ct, body = formOf(roomField("general"), file, file)
		case "a file part by another name":
			ct, body = formOf(roomField("general"), part{name: "upload", filename: "b.txt", data: []byte("y")}, file)
		case "two rooms":
			ct, body = formOf(roomField("general"), roomField("random"), file)
		case "an empty room":
			ct, body = formOf(roomField(""), file)
		case "a long room field":
			ct, body = formOf(roomField(strings.Repeat("r", 300)), file)
		case "too many parts":
			ct, body = formOf(append(append([]part{roomField("general")}, manyFields...), file)...)
		case "an empty file":
			ct, body = formOf(roomField("general"), filePart("a", "", nil))
		case "a bad room name":
			ct, body = formOf(roomField("a,b"), file)
		case "cut short":
			ct, body = wholeCT, bytes.NewReader(whole[:len(whole)-30000])
		case "a huge part header":
			ct, body = raw("--B\nContent-Disposition: form-data; name=\"room\"\nX-Pad: " + strings.Repeat("p", 200<<10) + "\n\ngeneral\n--B--\n")
		}
		resp, b := n.do(t, "alice", http.MethodPost, "/v1/files", ct, body, nil)
		wantError(t, tc.what, resp, b, http.StatusBadRequest, protocol.CodeBadRequest)
		if !strings.Contains(string(b), tc.says) {
			t.Errorf("%s: %s does not say %q", tc.what, b, tc.says)
		}
		wantEmpty(t, c.dir)
	}
	// Fields other than room and file are ignored, before and after it.
	n.upload(t, "alice", roomField("general"), part{name: "caption", data: []byte("hi")}, file, part{name: "x", data: []byte("y")})
}

// TestUploadTimeout: a body that stops arriving is answered 408 once
// UploadTimeout has passed, and leaves nothing behind.
func TestUploadTimeout(t *testing.T) {
	c := newCluster(t)
	n := c.node(t, files.Config{}, Config{UploadTimeout: 200e6}) // 200 ms
	ct, whole := form(t, roomField("general"), filePart("a", "", make([]byte, 8000)))
	pr, pw := io.Pipe()
	defer pw.Close()
	go func() { pw.Write(whole[:4000]) }() // then nothing more
	resp, b := n.do(t, "alice", http.MethodPost, "/v1/files", ct, pr, nil)
	wantError(t, "a stalled body", resp, b, http.StatusRequestTimeout, protocol.CodeTimeout)
	wantEmpty(t, c.dir)
}

func TestDisposition(t *testing.T) {
	for _, tc := range []struct {
		inline bool
		name   string
		want   string
	}{
		{true, "a.png", `inline; filename="a.png"; filename*=UTF-8''a.png`},
		{false, `x"; filename="evil.html`, `attachment; filename="x_; filename=_evil.html"; filename*=UTF-8''x%22%3B%20filename%3D%22evil.html`},
		{false, "Grüße 100%.pdf", `attachment; filename="Gr__e 100_.pdf"; filename*=UTF-8''Gr%C3%BC%C3%9Fe%20100%25.pdf`},
		{false, "a\r\nSet-Cookie: x", `attachment; filename="a__Set-Cookie: x"; filename*=UTF-8''a%0D%0ASet-Cookie%3A%20x`},
	} {
		if got := Disposition(tc.inline, tc.name); got != tc.want {
			t.Errorf("Disposition(%q) = %s; want %s", tc.name, got, tc.want)
		}
	}
}

// FuzzDisposition: any name gives a header value that parses back to the
// same name and type, with no control character in it.
func FuzzDisposition(f *testing.F) {
	for _, s := range []string{"a.png", `a"b`, "x\r\ny", "é", "%41", "a;b=c", "\\"} {
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, name string, inline bool) {
		v := Disposition(inline, name)
		for i := 0; i < len(v); i++ {
			if v[i] < 0x20 || v[i] > 0x7e {
				t.Fatalf("Disposition(%q) = %q: byte %#x", name, v, v[i])
			}
		}
		if !utf8.ValidString(name) {
			return
		}
		disp, params, err := mime.ParseMediaType(v)
		want := map[bool]string{true: "inline", false: "attachment"}[inline]
		if err != nil || disp != want || params["filename"] != name {
			t.Fatalf("Disposition(%q) = %q parses as %q %q %v", name, v, disp, params, err)
		}
	})
}

// TestUploadOutlivesTheBodyDeadline: behind httpx.BodyLimits, whose
// deadline suits JSON bodies, an upload gets UploadTimeout instead. With a
// server deadline of 1 ns, any read past the first buffer fails unless the
// handler moved the deadline.
func TestUploadOutlivesTheBodyDeadline(t *testing.T) {
	c := newCluster(t)
	limits := httpx.BodyLimits{Timeout: time.Nanosecond}
	ours := c.nodeWith(t, files.Config{}, Config{}, limits)
	ours.mustUpload(t, "alice", "general", "a.bin", "", make([]byte, 256<<10))

	theirs := c.nodeWith(t, files.Config{}, Config{UploadTimeout: -1}, limits)
	ct, data := form(t, roomField("general"), filePart("b.bin", "", make([]byte, 256<<10)))
	resp, body, err := theirs.try(t, "alice", http.MethodPost, "/v1/files", ct, bytes.NewReader(data), nil)
	if err != nil {
		// The server answered 408 and closed while the client was still
		// writing the body, so the client saw its write fail (broken pipe
		// or reset) rather than the answer: on a busy machine the server
		// gets there first. The upload failed at the server's deadline
		// either way.
		if !errors.Is(err, syscall.EPIPE) && !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("upload with the server's deadline kept: %v", err)
		}
		return
	}
	wantError(t, "the server's deadline kept", resp, body, http.StatusRequestTimeout, protocol.CodeTimeout)
}
