//go:build linux

package main

// TLS and HTTP/2 end to end: the real Main (in process, as the hardening
// tests run it) and the real binary, with a self-signed certificate made
// by the test.

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// testCert is a self-signed ECDSA P-256 certificate for 127.0.0.1 and
// localhost, written to files, and the pool that trusts it.
type testCert struct {
	certFile, keyFile string
	pool              *x509.CertPool
}

// newTestCert makes a certificate valid from an hour ago for a day.
func newTestCert(t testing.TB) testCert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "chatd test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	c := testCert{certFile: filepath.Join(dir, "cert.pem"), keyFile: filepath.Join(dir, "key.pem"), pool: x509.NewCertPool()}
	c.pool.AddCert(leaf)
	for _, f := range []struct {
		path, kind string
		der        []byte
	}{{c.certFile, "CERTIFICATE", der}, {c.keyFile, "PRIVATE KEY", keyDER}} {
		if err := os.WriteFile(f.path, pem.EncodeToMemory(&pem.Block{Type: f.kind, Bytes: f.der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// h2Client is an HTTP client that trusts c and speaks HTTP/2.
func (c testCert) h2Client() *http.Client {
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: c.pool},
		ForceAttemptHTTP2: true,
	}}
}

// do runs one request with a bound and returns the status and body.
func doReq(t *testing.T, client *http.Client, method, url, tok, body string) (*http.Response, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), answerWait)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, url, err)
	}
	return resp, b
}

// sseStream is an open GET /v1/sse: its envelopes arrive on events until
// the stream ends, when events closes.
type sseStream struct {
	resp   *http.Response
	events chan envelope
	cancel context.CancelFunc
}

// openSSE opens an SSE stream of user on room with client.
func openSSE(t *testing.T, client *http.Client, base, tok, room string) *sseStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/sse?rooms="+room, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := client.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET /v1/sse: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		t.Fatalf("GET /v1/sse: %s over %s: %s", resp.Status, resp.Proto, b)
	}
	s := &sseStream{resp: resp, events: make(chan envelope, 64), cancel: cancel}
	go s.read()
	t.Cleanup(s.close)
	return s
}

// read decodes the data: lines into events until the body ends.
func (s *sseStream) read() {
	defer close(s.events)
	sc := bufio.NewScanner(s.resp.Body)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		var e envelope
		if json.Unmarshal([]byte(data), &e) == nil {
			s.events <- e
		}
	}
}

func (s *sseStream) close() {
	s.cancel()
	s.resp.Body.Close()
	for range s.events { // wait for read to end
	}
}

// await reads events until want says yes, within answerWait.
func (s *sseStream) await(t *testing.T, what string, want func(envelope) bool) envelope {
	t.Helper()
	timer := time.NewTimer(answerWait)
	defer timer.Stop()
	for {
		select {
		case e, ok := <-s.events:
			if !ok {
				t.Fatalf("SSE stream ended while waiting for %s", what)
			}
			if want(e) {
				return e
			}
		case <-timer.C:
			t.Fatalf("no %s on the SSE stream within %v", what, answerWait)
		}
	}
}

// connsOpen reads chat_http_conns_open over client.
func connsOpen(t *testing.T, client *http.Client, base string) int {
	t.Helper()
	_, body := doReq(t, client, http.MethodGet, base+"/metrics", "", "")
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, "chat_http_conns_open "); ok {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return int(n)
		}
	}
	t.Fatal("no chat_http_conns_open in /metrics")
	return 0
}

// TestTLSHTTP2 serves over TLS and checks each tier through it: /readyz,
// REST, an SSE stream and a long poll over HTTP/2 on one connection, and
// a WebSocket over TLS on HTTP/1.1, chatting with the SSE stream. The
// connection caps still count connections under TLS: one for every
// HTTP/2 stream, one for the WebSocket, released when it closes.
func TestTLSHTTP2(t *testing.T) {
	cert := newTestCert(t)
	s := startServer(t, "--tls-cert", cert.certFile, "--tls-key", cert.keyFile, "--max-conns-per-ip", "64")
	base := "https://" + s.host
	client := cert.h2Client()
	defer client.CloseIdleConnections()

	resp, body := doReq(t, client, http.MethodGet, base+"/readyz", "", "")
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
		t.Fatalf("GET /readyz: %s over %s: %s", resp.Status, resp.Proto, body)
	}
	if cs := resp.TLS; cs == nil || cs.NegotiatedProtocol != "h2" || cs.Version < tls.VersionTLS12 {
		t.Fatalf("GET /readyz: TLS state %+v, want h2 over TLS 1.2 or later", cs)
	}

	// SSE over HTTP/2: the head says nothing HTTP/2 forbids, and a message
	// sent over REST on the same connection arrives.
	const room = "tls-room"
	alice, bob := token(t, e2eSecret, "alice", "Alice"), token(t, e2eSecret, "bob", "Bob")
	stream := openSSE(t, client, base, alice, room)
	if r := stream.resp; r.ProtoMajor != 2 || r.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("GET /v1/sse: %s, Content-Type %q", r.Proto, r.Header.Get("Content-Type"))
	}
	for _, h := range []string{"Connection", "Transfer-Encoding", "Keep-Alive"} {
		if v, ok := stream.resp.Header[h]; ok {
			t.Errorf("the SSE answer over HTTP/2 has %s: %q", h, v)
		}
	}
	stream.await(t, "joined "+room, func(e envelope) bool { return e.Type == "joined" && e.Room == room })
	resp, body = doReq(t, client, http.MethodPost, base+"/v1/send", bob, `{"room":"tls-room","id":"b1","text":"over h2"}`)
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
		t.Fatalf("POST /v1/send: %s over %s: %s", resp.Status, resp.Proto, body)
	}
	stream.await(t, "bob's message", func(e envelope) bool { return e.Type == "message" && e.ID == "b1" && e.Text == "over h2" })

	// A long poll over HTTP/2 gets what it missed.
	resp, body = doReq(t, client, http.MethodGet, base+"/v1/poll?rooms="+room+"&since="+room+":0", bob, "")
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 || !strings.Contains(string(body), `"over h2"`) {
		t.Fatalf("GET /v1/poll: %s over %s: %s", resp.Status, resp.Proto, body)
	}

	// A send refused before its body is read (a bad token) answers 401
	// and leaves the connection open for the next request.
	resp, body = doReq(t, client, http.MethodPost, base+"/v1/send", "not-a-token", `{"room":"tls-room","id":"x1","text":"no"}`)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("POST /v1/send with a bad token: %s: %s", resp.Status, body)
	}

	// Every request so far shared one connection: no answer sent GOAWAY.
	if n := connsOpen(t, client, base); n != 1 {
		t.Errorf("chat_http_conns_open = %d with one HTTP/2 connection, want 1", n)
	}

	// A WebSocket over TLS, on HTTP/1.1: it joins, sends, and the SSE
	// stream gets the message; it gets one sent over REST.
	ws := dialWSS(t, cert, base, bob)
	if n := connsOpen(t, client, base); n != 2 {
		t.Errorf("chat_http_conns_open = %d with an HTTP/2 connection and a WebSocket, want 2", n)
	}
	wsWrite(t, ws, map[string]string{"type": "join", "room": room})
	wsAwait(t, ws, "joined", func(e envelope) bool { return e.Type == "joined" && e.Room == room })
	wsWrite(t, ws, map[string]string{"type": "send", "room": room, "id": "b2", "text": "over wss"})
	wsAwait(t, ws, "the ack", func(e envelope) bool { return e.Type == "ack" && e.ID == "b2" })
	stream.await(t, "the WebSocket's message", func(e envelope) bool { return e.Type == "message" && e.ID == "b2" && e.From == "bob" })
	resp, body = doReq(t, client, http.MethodPost, base+"/v1/send", alice, `{"room":"tls-room","id":"a1","text":"to wss"}`)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /v1/send: %s: %s", resp.Status, body)
	}
	wsAwait(t, ws, "alice's message", func(e envelope) bool { return e.Type == "message" && e.ID == "a1" && e.Text == "to wss" })

	// Closing the WebSocket releases its count.
	ws.Close()
	waitFor(t, "the WebSocket's connection to be released", func() bool { return connsOpen(t, client, base) == 1 })
}

// dialWSS opens /v1/ws over TLS as tok's user and checks that it runs on
// HTTP/1.1 over TLS 1.2 or later.
func dialWSS(t *testing.T, cert testCert, base, tok string) *websocket.Conn {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: answerWait, TLSClientConfig: &tls.Config{RootCAs: cert.pool}}
	ws, resp, err := d.Dial("wss"+strings.TrimPrefix(base, "https")+"/v1/ws", http.Header{"Authorization": {"Bearer " + tok}})
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial wss: status %d: %v", status, err)
	}
	t.Cleanup(func() { ws.Close() })
	if resp.ProtoMajor != 1 || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Errorf("WebSocket upgrade: %s %s, want 101 over HTTP/1.1", resp.Proto, resp.Status)
	}
	tc, ok := ws.NetConn().(*tls.Conn)
	if !ok {
		t.Fatalf("the WebSocket runs on %T, not TLS", ws.NetConn())
	}
	if v := tc.ConnectionState().Version; v < tls.VersionTLS12 {
		t.Errorf("the WebSocket's TLS version is %x", v)
	}
	return ws
}

func wsWrite(t *testing.T, ws *websocket.Conn, v any) {
	t.Helper()
	_ = ws.SetWriteDeadline(time.Now().Add(answerWait))
	if err := ws.WriteJSON(v); err != nil {
		t.Fatalf("WebSocket write: %v", err)
	}
}

// wsAwait reads frames until want says yes to an envelope, within
// answerWait.
func wsAwait(t *testing.T, ws *websocket.Conn, what string, want func(envelope) bool) {
	t.Helper()
	_ = ws.SetReadDeadline(time.Now().Add(answerWait))
	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("waiting for %s on the WebSocket: %v", what, err)
		}
		for _, e := range decodeFrame(t, data) {
			if want(e) {
				return
			}
		}
	}
}

// TestTLSFlags: --tls-cert and --tls-key go together, from flags or
// their environment twins; a certificate that does not load stops Run
// before it listens.
func TestTLSFlags(t *testing.T) {
	env := func(kv map[string]string) func(string) string {
		return func(k string) string { return kv[k] }
	}
	for _, tc := range []struct {
		args    []string
		env     map[string]string
		missing string // the flag the error must name as missing; "": no error
	}{
		{nil, nil, ""},
		{[]string{"--tls-cert", "c.pem", "--tls-key", "k.pem"}, nil, ""},
		{nil, map[string]string{"CHAT_TLS_CERT": "c.pem", "CHAT_TLS_KEY": "k.pem"}, ""},
		{[]string{"--tls-cert", "c.pem"}, map[string]string{"CHAT_TLS_KEY": "k.pem"}, ""},
		{[]string{"--tls-cert", "c.pem"}, nil, "--tls-key"},
		{[]string{"--tls-key", "k.pem"}, nil, "--tls-cert"},
		{nil, map[string]string{"CHAT_TLS_CERT": "c.pem"}, "--tls-key"},
		{nil, map[string]string{"CHAT_TLS_KEY": "k.pem"}, "--tls-cert"},
	} {
		m := NewMain()
		err := m.ParseFlags(tc.args, env(tc.env))
		switch {
		case tc.missing == "" && err != nil:
			t.Errorf("args %q env %v: %v", tc.args, tc.env, err)
		case tc.missing == "" && tc.args == nil && tc.env == nil:
			if m.Config.TLSCert != "" || m.Config.TLSKey != "" {
				t.Errorf("TLS is on by default: %+v", m.Config)
			}
		case tc.missing == "":
			if m.Config.TLSCert != "c.pem" || m.Config.TLSKey != "k.pem" {
				t.Errorf("args %q env %v: cert %q key %q", tc.args, tc.env, m.Config.TLSCert, m.Config.TLSKey)
			}
		case err == nil:
			t.Errorf("args %q env %v: accepted without %s", tc.args, tc.env, tc.missing)
		case !strings.Contains(err.Error(), "needs "+tc.missing):
			t.Errorf("args %q env %v: the error %q does not say %s is missing", tc.args, tc.env, err, tc.missing)
		}
	}

	// A key that is not the certificate's, and a file that is missing.
	a, b := newTestCert(t), newTestCert(t)
	for _, files := range [][2]string{{a.certFile, b.keyFile}, {a.certFile, filepath.Join(t.TempDir(), "none.pem")}} {
		m := NewMain()
		m.Stdout, m.Stderr = io.Discard, io.Discard
		args := []string{"--addr", "127.0.0.1:0", "--data", t.TempDir(), "--tls-cert", files[0], "--tls-key", files[1]}
		if err := m.ParseFlags(args, env(nil)); err != nil {
			t.Fatal(err)
		}
		err := m.Run(context.Background())
		if err == nil {
			m.Close()
			t.Errorf("Run served with cert %s and key %s", files[0], files[1])
			continue
		}
		if !strings.Contains(err.Error(), "--tls-cert") {
			t.Errorf("the error does not name --tls-cert: %v", err)
		}
	}
}

var readyHTTPS = regexp.MustCompile(`url=(https://[^\s"]+)`)

// TestE2ETLSBinary runs the binary with the certificate from the
// environment twins: its ready line gives an https URL that answers over
// HTTP/2. Given only a certificate, the binary exits 2 and says what is
// missing.
func TestE2ETLSBinary(t *testing.T) {
	cert := newTestCert(t)
	p := launch(t, []string{"--addr", "127.0.0.1:0", "--data", t.TempDir(), "--jwt-secret", e2eSecret},
		"CHAT_TLS_CERT="+cert.certFile, "CHAT_TLS_KEY="+cert.keyFile)
	// launch's ready channel takes http:// URLs only: read the output.
	waitFor(t, "the ready line", func() bool { return readyHTTPS.MatchString(p.out.String()) || p.hasExited() })
	m := readyHTTPS.FindStringSubmatch(p.out.String())
	if m == nil {
		t.Fatalf("chatd has no ready line with an https URL: %v\n%s", p.err, p.out.String())
	}
	base := m[1]
	client := cert.h2Client()
	defer client.CloseIdleConnections()
	resp, body := doReq(t, client, http.MethodGet, base+"/readyz", "", "")
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
		t.Errorf("GET /readyz: %s over %s: %s", resp.Status, resp.Proto, body)
	}

	half := launch(t, []string{"--addr", "127.0.0.1:0", "--data", t.TempDir(), "--tls-cert", cert.certFile})
	half.waitExit(t)
	if code := half.cmd.ProcessState.ExitCode(); code != 2 {
		t.Errorf("with --tls-cert alone chatd exited %d, want 2", code)
	}
	if out := half.out.String(); !strings.Contains(out, "--tls-cert needs --tls-key") {
		t.Errorf("with --tls-cert alone the error does not say the key is missing:\n%s", out)
	}
}
