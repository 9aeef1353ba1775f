package main

import (
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// defaultSourceIPs is the range clients dial from when the target is on
// loopback: eight addresses give eight times the ephemeral ports, so
// 10k WebSockets plus the short HTTP calls of SSE and poll users never
// run out (one address has 28k ports, and closed calls linger in
// TIME_WAIT).
const defaultSourceIPs = "127.0.0.2-127.0.0.9"

// dialers are the connection pools clients share: one per source
// address, each an http.Transport (negotiate, tickets, sends, SSE
// streams, polls) and a WebSocket dialer. Client i uses pool i mod n.
// Sharing keeps idle HTTP connections, and their goroutines, few: an SSE
// or poll user needs a second connection only while a send is in flight.
type dialers struct {
	http []*http.Client      // Static after construction.
	ws   []*websocket.Dialer // Static after construction.
}

// newDialers builds one pool per address in ips, or a single pool that
// lets the system choose when ips is empty.
func newDialers(ips []net.IP, timeout time.Duration) *dialers {
	if len(ips) == 0 {
		ips = []net.IP{nil}
	}
	d := &dialers{}
	writePool := &sync.Pool{} // WebSocket write buffers, lent per write
	for _, ip := range ips {
		nd := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
		if ip != nil {
			nd.LocalAddr = &net.TCPAddr{IP: ip}
		}
		tr := &http.Transport{
			DialContext:         nd.DialContext,
			MaxIdleConns:        0, // no limit overall
			MaxIdleConnsPerHost: 4096,
			MaxConnsPerHost:     0, // one per SSE stream and poll in flight
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
			// No ResponseHeaderTimeout: a poll is held up to 25 s; the
			// client bounds every request with its own deadline.
		}
		d.http = append(d.http, &http.Client{Transport: tr})
		d.ws = append(d.ws, &websocket.Dialer{
			NetDialContext:   nd.DialContext,
			HandshakeTimeout: timeout,
			ReadBufferSize:   2048,
			WriteBufferSize:  1024,
			WriteBufferPool:  writePool,
		})
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
