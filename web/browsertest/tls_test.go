package browsertest

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/security"
	"github.com/chromedp/chromedp"
)

// sseOnly keeps the page on the SSE tier.
const sseOnly = `window.chatdClientOptions = {transports: ['sse']};`

// TestTabsOnSSEOverHTTP2: three people, each in a tab of their own, on
// the SSE tier over HTTPS. Every tab gets every other tab's message, and
// every response the pages got, the event streams included, came over
// HTTP/2. (On HTTP/1.1 a browser holds at most 6 connections to a site,
// and each SSE tab keeps one busy; on HTTP/2 they share one.)
func TestTabsOnSSEOverHTTP2(t *testing.T) {
	srv := startTLSServer(t)
	protos := &protocols{seen: map[string]map[string]bool{}}
	names := []string{"ada", "ben", "cy"}
	tabs := make([]*tab, len(names))
	for i, name := range names {
		u := newUser(t)
		// The certificate is the test's own, self-signed.
		if _, err := chromedp.Call(u.ctx, security.SetIgnoreCertificateErrors, security.SetIgnoreCertificateErrorsParams{Ignore: true}); err != nil {
			t.Fatalf("%s: ignore certificate errors: %v", name, err)
		}
		if err := chromedp.Listen(u.ctx, protos.record(srv.tlsBase)); err != nil {
			t.Fatalf("%s: listen: %v", name, err)
		}
		tabs[i] = u.open(name, srv.tlsBase, tabOptions{preScript: sseOnly})
		tabs[i].login(name)
	}
	for _, tb := range tabs {
		tb.waitConnected("sse")
	}

	var texts []string
	for _, tb := range tabs {
		text := "hello from " + tb.name
		texts = append(texts, text)
		tb.send(text)
		tb.waitText(text) // acked before the next tab sends, so the order is known
	}
	for _, tb := range tabs {
		tb.waitTexts(texts)
		tb.waitConnected("sse")
		var nav string
		tb.mustEval(`performance.getEntriesByType('navigation')[0].nextHopProtocol`, &nav)
		if nav != "h2" {
			t.Errorf("%s: the page came over %q, want h2", tb.name, nav)
		}
		tb.checkCSP()
	}
	protos.check(t, "/v1/sse", "/v1/send", "/v1/negotiate")
}

// protocols records the protocol of each response the pages got from the
// server, by path.
type protocols struct {
	mu   sync.Mutex
	seen map[string]map[string]bool // path → protocols; guarded by mu
}

// record returns a listener for network events that records responses
// from base.
func (p *protocols) record(base string) func(ev any) {
	return func(ev any) {
		e, ok := ev.(*network.EventResponseReceived)
		if !ok || e.Response == nil || !strings.HasPrefix(e.Response.URL, base) {
			return
		}
		path := e.Response.URL
		if u, err := url.Parse(path); err == nil {
			path = u.Path
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.seen[path] == nil {
			p.seen[path] = map[string]bool{}
		}
		p.seen[path][e.Response.Protocol] = true
	}
}

// check fails the test unless every response came over h2, and paths
// each had one.
func (p *protocols) check(t *testing.T, paths ...string) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	var all []string
	for path, ps := range p.seen {
		for proto := range ps {
			all = append(all, path+" "+proto)
			if proto != "h2" {
				t.Errorf("%s came over %q, want h2", path, proto)
			}
		}
	}
	sort.Strings(all)
	for _, path := range paths {
		if !p.seen[path]["h2"] {
			t.Errorf("no response to %s over h2; responses seen: %s", path, strings.Join(all, ", "))
		}
	}
}

// tlsServer is a chatd process serving HTTPS.
type tlsServer struct {
	*server
	tlsBase string // https://127.0.0.1:port
}

// startTLSServer runs chatd in dev mode on a free port with a fresh
// self-signed certificate, and waits for its ready line.
func startTLSServer(t *testing.T) *tlsServer {
	t.Helper()
	certFile, keyFile := selfSigned(t)
	s := &server{t: t, addr: freeAddr(t), data: t.TempDir()}
	cmd := exec.Command(chatdBin, "--addr", s.addr, "--data", s.data, "--log-level", "info",
		"--tls-cert", certFile, "--tls-key", keyFile)
	cmd.Env = serverEnv()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready, done := make(chan struct{}), make(chan struct{})
	s.cmd, s.done = cmd, done
	t.Cleanup(s.stop)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		once := false
		for sc.Scan() {
			line := sc.Text()
			s.mu.Lock()
			s.log.WriteString(line + "\n")
			s.mu.Unlock()
			if !once && strings.Contains(line, `msg="chatd ready"`) && strings.Contains(line, "url=https://") {
				once = true
				close(ready)
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		_ = cmd.Wait()
		close(done)
	}()
	select {
	case <-ready:
	case <-done:
		t.Fatalf("chatd exited before it was ready over https:\n%s", s.logs())
	case <-time.After(20 * time.Second):
		t.Fatalf("chatd not ready over https after 20s:\n%s", s.logs())
	}
	return &tlsServer{server: s, tlsBase: "https://" + s.addr}
}

// selfSigned writes a self-signed ECDSA P-256 certificate for 127.0.0.1
// and its key, and returns their paths.
func selfSigned(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "chatd browser test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	for path, block := range map[string]*pem.Block{
		certFile: {Type: "CERTIFICATE", Bytes: der},
		keyFile:  {Type: "PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(fmt.Errorf("writing %s: %w", path, err))
		}
	}
	return certFile, keyFile
}
