package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/chatd/chatd/transports/wsinflate"
)

// defaultSourceIPs is the range clients dial from when the target is on
// loopback: eight addresses give eight times the ephemeral ports, so
// 10k WebSockets plus the short HTTP calls of SSE and poll users never
// run out (one address has 28k ports, and closed calls linger in
// TIME_WAIT).
const defaultSourceIPs = "127.0.0.2-127.0.0.9"

// restConnsPerPool bounds the connections each pool opens for short
// calls (negotiate, tickets, sends, reads). Without a bound, a storm's
// 10k clients negotiating at once opened as many sockets next to their
// 10k WebSockets, and the tool ran out of descriptors (EMFILE) at its
// 20,000 limit. Short calls wait for a connection instead; 64 per
// address, 512 in all, keep the server busy when the calls are connects
// (idle and storm).
const restConnsPerPool = 64

// sendConnsPerPool is the bound for workloads whose SSE and poll users
// send and read over HTTP (chat, broadcast): 256 per address, 2,048 in
// all. A browser has connections of its own; at 64 per address, 3,000
// such users shared 512, and under load their sends waited for one in
// the tool: at 10k chat users of the seed's mix, the acks' p99 was
// 5.1-5.7 s with 64 and 1.7 s with 256, on the same server.
const sendConnsPerPool = 256

// restConns is the bound on each pool's short-call connections for cfg's
// workload.
func restConns(cfg Config) int {
	if cfg.Workload == Idle || cfg.Workload == Storm {
		return restConnsPerPool
	}
	return sendConnsPerPool
}

// dialers are the connection pools clients share: one per source
// address, each an http.Client and a WebSocket dialer. Client i uses
// pool i mod n. Each client's requests go through two transports (see
// route): short calls share a bounded set of kept-alive connections;
// SSE streams and polls, which are held, get a connection each, and a
// poll's is kept for the client's next poll. Sharing keeps idle HTTP
// connections, and their goroutines on both sides, few.
type dialers struct {
	http []*http.Client      // Static after construction.
	ws   []*websocket.Dialer // Static after construction.
	rx   atomic.Uint64       // bytes read from the server over every connection: what it sent, on the wire
	wsz  wsinflate.Stats     // WebSocket connections granted context takeover, and messages inflated with it
}

// countedConn counts what it reads into rx.
type countedConn struct {
	net.Conn
	rx *atomic.Uint64
}

func (c countedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.rx.Add(uint64(n))
	return n, err
}

// route sends SSE streams to streams, polls to polls (streams if nil)
// and every other request to rest. The target URL may have a path of its
// own (a proxy's prefix).
type route struct {
	rest, streams *http.Transport // Static after construction.
	polls         *pollTransport  // Static after construction; nil: streams.
}

func (r route) RoundTrip(req *http.Request) (*http.Response, error) {
	switch p := req.URL.Path; {
	case strings.HasSuffix(p, "/v1/poll") && r.polls != nil:
		return r.polls.RoundTrip(req)
	case strings.HasSuffix(p, "/v1/sse") || strings.HasSuffix(p, "/v1/poll"):
		return r.streams.RoundTrip(req)
	}
	return r.rest.RoundTrip(req)
}

func (r route) CloseIdleConnections() {
	r.rest.CloseIdleConnections()
	r.streams.CloseIdleConnections()
	if r.polls != nil {
		r.polls.CloseIdleConnections()
	}
}

// newDialers builds one pool per address in ips, or a single pool that
// lets the system choose when ips is empty, each opening at most
// restConns connections for short calls, and offering compression when
// compress is set.
func newDialers(ips []net.IP, timeout time.Duration, restConns int, compress bool, tlsConf *tls.Config) *dialers {
	if len(ips) == 0 {
		ips = []net.IP{nil}
	}
	d := &dialers{}
	writePool := &sync.Pool{} // WebSocket write buffers, lent per write
	for _, ip := range ips {
		// No TCP keep-alive: on loopback a dead server resets or closes
		// its connections, and the clients' heartbeats find a silent
		// one; its four socket options a dial were 3% of the tool's CPU
		// in a reconnect storm.
		nd := &net.Dialer{Timeout: timeout, KeepAlive: -1}
		if ip != nil {
			nd.LocalAddr = &net.TCPAddr{IP: ip}
		}
		dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := nd.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return countedConn{Conn: c, rx: &d.rx}, nil
		}
		rest := &http.Transport{
			DialContext:         dial,
			MaxConnsPerHost:     restConns,
			MaxIdleConnsPerHost: restConns,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  !compress,
			TLSClientConfig:     tlsConf.Clone(), // a transport adds its protocols to it
			ForceAttemptHTTP2:   true,            // over https, as browsers do
		}
		streams := &http.Transport{
			DialContext:         dial,
			MaxConnsPerHost:     0,    // one per SSE stream and poll in flight
			MaxIdleConnsPerHost: 4096, // a poll's connection, between polls
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  !compress,
			TLSClientConfig:     tlsConf.Clone(),
			ForceAttemptHTTP2:   true,
			// No ResponseHeaderTimeout: a poll is held up to 25 s; the
			// client bounds every request with its own deadline.
		}
		// Polls on the caller's goroutine (https ones go to streams).
		rt := route{rest: rest, streams: streams, polls: &pollTransport{dial: dial, next: streams, gzip: compress}}
		d.http = append(d.http, &http.Client{Transport: rt})
		wd := &websocket.Dialer{
			NetDialContext:    dial,
			HandshakeTimeout:  timeout,
			ReadBufferSize:    2048,
			WriteBufferSize:   1024,
			WriteBufferPool:   writePool,
			EnableCompression: compress,
			TLSClientConfig:   tlsConf,
		}
		if compress {
			// As a browser offers: the server may deflate each message
			// against the ones before it.
			wd = wsinflate.Dialer(wd, &d.wsz)
		}
		d.ws = append(d.ws, wd)
	}
	return d
}

// pick returns the pools of client i.
func (d *dialers) pick(i int) (*http.Client, *websocket.Dialer) {
	k := i % len(d.http)
	return d.http[k], d.ws[k]
}

// closeIdle closes every pool's idle connections.
func (d *dialers) closeIdle() {
	for _, c := range d.http {
		c.CloseIdleConnections()
	}
}

// allLoopback reports whether every URL's host is on loopback.
func allLoopback(urls []string) bool {
	for _, u := range urls {
		if !isLoopback(u) {
			return false
		}
	}
	return len(urls) > 0
}

// isLoopback reports whether the URL's host is a loopback address or
// localhost.
func isLoopback(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	host := u.Hostname()
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback() && ip.To4() != nil
}

// tlsConfig trusts the certificates in caFile, or the system's roots when
// it is "" (nil: the defaults).
func tlsConfig(caFile string) (*tls.Config, error) {
	if caFile == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("%w: --ca: %w", ErrConfig, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%w: --ca: no PEM certificate in %s", ErrConfig, caFile)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}
