package files

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/core/files"
	"github.com/chatd/chatd/core/files/filestest"
	"github.com/chatd/chatd/core/protocol"
	"github.com/chatd/chatd/transports/httpx"
)

// cluster is a set of nodes on one bucket directory and one token key.
type cluster struct {
	dir      string
	verifier *auth.Verifier
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	v, err := auth.NewVerifier(auth.Config{}) // dev mode: IssueDev signs
	if err != nil {
		t.Fatal(err)
	}
	return &cluster{dir: t.TempDir(), verifier: v}
}

// node is one server: a Service on the cluster's bucket behind the
// Handler, on a real loopback listener.
type node struct {
	svc *files.Service
	url string
	c   *cluster
}

func (c *cluster) node(t *testing.T, cfg files.Config, hcfg Config) *node {
	t.Helper()
	return c.nodeWith(t, cfg, hcfg, httpx.BodyLimits{})
}

// nodeWith is node behind the server's body deadline, as chatd runs it.
func (c *cluster) nodeWith(t *testing.T, cfg files.Config, hcfg Config, limits httpx.BodyLimits) *node {
	t.Helper()
	svc := files.New(openStorage(t, c.dir), cfg)
	authn := &httpx.Authenticator{Verifier: c.verifier}
	r := chi.NewRouter()
	r.Route("/v1", func(r chi.Router) {
		r.Use(authn.Require)
		New(svc, hcfg).Routes(r)
	})
	srv := httptest.NewServer(limits.Middleware(r))
	t.Cleanup(srv.Close)
	return &node{svc: svc, url: srv.URL, c: c}
}

// newNode is a cluster of one.
func newNode(t *testing.T, cfg files.Config) *node {
	t.Helper()
	return newCluster(t).node(t, cfg, Config{})
}

func (n *node) token(t *testing.T, user string) string {
	t.Helper()
	tok, err := n.c.verifier.IssueDev(user, false, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// part is one part of a multipart form.
type part struct {
	name, filename, contentType string
	data                        []byte
}

func roomField(room string) part { return part{name: "room", data: []byte(room)} }

func filePart(filename, contentType string, data []byte) part {
	return part{name: "file", filename: filename, contentType: contentType, data: data}
}

// form encodes parts as multipart/form-data.
func form(t *testing.T, parts ...part) (string, []byte) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	for _, p := range parts {
		h := textproto.MIMEHeader{}
		cd := fmt.Sprintf("form-data; name=%q", p.name)
		if p.filename != "" {
			cd += fmt.Sprintf("; filename=%q", p.filename)
		}
		h.Set("Content-Disposition", cd)
		if p.contentType != "" {
			h.Set("Content-Type", p.contentType)
		}
		w, err := mw.CreatePart(h)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(p.data)
	}
	mw.Close()
	return mw.FormDataContentType(), b.Bytes()
}

// do sends a request as user ("" for none) and returns the response with
// its body read.
func (n *node) do(t *testing.T, user, method, path, contentType string, body io.Reader, header http.Header) (*http.Response, []byte) {
	t.Helper()
	resp, b, err := n.try(t, user, method, path, contentType, body, header)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// try is do that returns the request's error instead of failing the test.
func (n *node) try(t *testing.T, user, method, path, contentType string, body io.Reader, header http.Header) (*http.Response, []byte, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, n.url+path, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if user != "" {
		req.Header.Set("Authorization", "Bearer "+n.token(t, user))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, err
	}
	return resp, b, nil
}

// upload posts a form as user.
func (n *node) upload(t *testing.T, user string, parts ...part) (*http.Response, []byte) {
	t.Helper()
	ct, body := form(t, parts...)
	return n.do(t, user, http.MethodPost, "/v1/files", ct, bytes.NewReader(body), nil)
}

// mustUpload uploads one file to room and decodes the answer.
func (n *node) mustUpload(t *testing.T, user, room, filename, contentType string, data []byte) files.File {
	t.Helper()
	resp, body := n.upload(t, user, roomField(room), filePart(filename, contentType, data))
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload %s: %s %s", filename, resp.Status, body)
	}
	var f files.File
	if err := json.Unmarshal(body, &f); err != nil {
		t.Fatal(err)
	}
	if loc := resp.Header.Get("Location"); loc != f.URL {
		t.Fatalf("Location %q; url %q", loc, f.URL)
	}
	return f
}

func (n *node) get(t *testing.T, user, path string, header http.Header) (*http.Response, []byte) {
	t.Helper()
	return n.do(t, user, http.MethodGet, path, "", nil, header)
}

// wantError checks an error answer: status and envelope code.
func wantError(t *testing.T, what string, resp *http.Response, body []byte, status int, code protocol.Code) {
	t.Helper()
	var env protocol.Envelope
	if err := json.Unmarshal(body, &env); err != nil {
		t.Fatalf("%s: %s, body %q is not an envelope", what, resp.Status, body)
	}
	if resp.StatusCode != status || env.Type != protocol.TypeError || env.Code != string(code) {
		t.Fatalf("%s: %s %s; want %d %s", what, resp.Status, body, status, code)
	}
}

func wantEmpty(t *testing.T, dir string) {
	t.Helper()
	if left := filestest.Files(t, dir); len(left) > 0 {
		t.Fatalf("the bucket still holds %v", left)
	}
}

// gateOff is a Gate that turns uploads off.
func gateOff(context.Context, auth.Identity) error {
	return protocol.Errorf(protocol.CodeFeatureDisabled, "files are off")
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
