package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"time"
)

// TLS: with --tls-cert and --tls-key the node serves HTTPS, and browsers
// get HTTP/2 (ALPN h2) from net/http's own server. On HTTP/1.1 a browser
// opens at most 6 connections to a site, so a few tabs on the SSE tier,
// each holding a stream open, starve each other's requests; on HTTP/2 all
// of them share one connection. WebSocket upgrades still arrive over
// HTTP/1.1: Go's HTTP/2 server does not offer RFC 8441's extended CONNECT
// unless GODEBUG=http2xconnect=1, which chatd must not be run with (the
// WebSocket handler needs a connection it can hijack).
//
// The certificate is read once, at start: a renewed one takes a restart.
const (
	// h2MaxStreams caps the requests one HTTP/2 connection carries at
	// once, as nginx's http2_max_concurrent_streams (128; Go's default is
	// 250). A browser's tabs share one connection, each tab holding one
	// stream; a user has at most 20 sessions (core.Config.MaxConnsPerUser),
	// so 128 leaves ample room for their requests. It also bounds what one
	// connection holds open, since the per-IP cap counts connections, not
	// streams.
	h2MaxStreams = 128
	// h2WriteByteTimeout closes an HTTP/2 connection that takes no byte
	// for this long while data waits. A stream's own write deadline (10 s
	// per batch on SSE) resets that stream, but the connection's frames,
	// shared by every stream, would otherwise wait on a dead peer until
	// TCP gives up, minutes later.
	h2WriteByteTimeout = 30 * time.Second
)

// tlsFlags defines --tls-cert and --tls-key on fs, with their environment
// twins.
func tlsFlags(fs *flag.FlagSet, c *Config, envs map[string]string) {
	fs.StringVar(&c.TLSCert, "tls-cert", "", "PEM certificate chain file; with --tls-key, serve HTTPS and HTTP/2 (env CHAT_TLS_CERT)")
	envs["tls-cert"] = "CHAT_TLS_CERT"
	fs.StringVar(&c.TLSKey, "tls-key", "", "PEM private key file of --tls-cert (env CHAT_TLS_KEY)")
	envs["tls-key"] = "CHAT_TLS_KEY"
}

// checkTLS refuses one of --tls-cert and --tls-key without the other.
func (c Config) checkTLS() error {
	switch {
	case c.TLSCert != "" && c.TLSKey == "":
		return errors.New("--tls-cert needs --tls-key (or CHAT_TLS_KEY): give both to serve HTTPS, or neither")
	case c.TLSCert == "" && c.TLSKey != "":
		return errors.New("--tls-key needs --tls-cert (or CHAT_TLS_CERT): give both to serve HTTPS, or neither")
	}
	return nil
}

// tlsConfig loads the certificate and returns the server's TLS settings,
// or nil when TLS is not configured. TLS 1.2 is the minimum; the cipher
// suites are Go's defaults, which HTTP/2 accepts.
func (c Config) tlsConfig() (*tls.Config, error) {
	if c.TLSCert == "" && c.TLSKey == "" {
		return nil, nil
	}
	if err := c.checkTLS(); err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert %s, --tls-key %s: %w", c.TLSCert, c.TLSKey, err)
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
	}, nil
}

// useTLS makes srv serve tc, with HTTP/2 on. net/http sets up HTTP/2
// itself in ServeTLS: TLSNextProto stays nil (a non-nil map without "h2"
// would turn HTTP/2 off), and Protocols stays nil (HTTP/1.1 and HTTP/2).
func useTLS(srv *http.Server, tc *tls.Config) {
	srv.TLSConfig = tc
	srv.HTTP2 = &http.HTTP2Config{MaxConcurrentStreams: h2MaxStreams, WriteByteTimeout: h2WriteByteTimeout}
}

// serve serves m.http on m.ln until the server closes: over TLS when
// m.tls is set. The TLS listener wraps the connection caps, so a
// connection is counted from accept, before its handshake, and
// http.Server still sees the *tls.Conn it needs to speak HTTP/2. (Tell
// TLS from plain by m.tls, never by m.http.TLSConfig: Serve fills that in
// even for plain HTTP.)
func (m *Main) serve() error {
	if m.tls != nil {
		return m.http.ServeTLS(m.ln, "", "")
	}
	return m.http.Serve(m.ln)
}

// scheme is the URL scheme the node serves.
func (m *Main) scheme() string {
	if m.tls != nil {
		return "https"
	}
	return "http"
}

// logTLS logs the certificate in use, and warns when it has expired or is
// not yet valid: browsers will refuse it.
func (m *Main) logTLS(now time.Time) {
	leaf := m.tls.Certificates[0].Leaf
	if leaf == nil {
		return
	}
	args := []any{"subject", leaf.Subject.String(), "dns", leaf.DNSNames, "not_after", leaf.NotAfter.UTC(),
		"min_version", "1.2"}
	if now.After(leaf.NotAfter) || now.Before(leaf.NotBefore) {
		m.log.Warn("tls certificate is not valid now; clients will refuse it", args...)
		return
	}
	m.log.Info("tls", args...)
}
