package client

import (
	"bytes"
	"encoding/json"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// httpProxy is a reverse proxy on loopback in front of a test server,
// with the misbehaviours of real proxies switched on by its fields
// (set before use).
type httpProxy struct {
	URL string

	refuseWS  bool         // answer 403 to WebSocket upgrades
	bufferSSE bool         // hold /v1/sse bytes until the upstream ends
	failSends atomic.Int32 // answer this many more POST /v1/send with 503
	busyWS    atomic.Int32 // answer this many more upgrades as a full server would

	// pollHook answers a poll itself when it reports true, instead of
	// passing it on.
	pollHook func(w http.ResponseWriter, r *http.Request) bool

	refused atomic.Int32 // upgrades refused
	lower   atomic.Int32 // SSE streams and polls opened

	mu          sync.Mutex
	sends       []string      // the ids of every POST /v1/send seen; guarded by mu
	polls       []time.Time   // when each GET /v1/poll arrived; guarded by mu
	pollHeaders []http.Header // each GET /v1/poll's header as it arrived; guarded by mu
}

func newHTTPProxy(t testing.TB, upstream string, setup func(*httpProxy)) *httpProxy {
	t.Helper()
	target, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	p := &httpProxy{}
	if setup != nil {
		setup(p)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = tr
	rp.ErrorLog = log.New(io.Discard, "", 0)
	rp.ModifyResponse = func(resp *http.Response) error {
		if !p.bufferSSE || resp.Request.URL.Path != "/v1/sse" {
			return nil
		}
		// A buffering proxy: nothing reaches the client before the
		// upstream response is complete.
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(body))
		return err
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p.refuseWS && strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			p.refused.Add(1)
			http.Error(w, "websockets are not allowed here", http.StatusForbidden)
			return
		}
		if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") && p.busyWS.Add(-1) >= 0 {
			p.refused.Add(1)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, `{"type":"error","code":"unavailable","message":"at the connection cap"}`)
			return
		}
		if r.URL.Path == "/v1/poll" || r.URL.Path == "/v1/sse" {
			p.lower.Add(1)
		}
		if r.URL.Path == "/v1/poll" {
			p.mu.Lock()
			p.polls = append(p.polls, time.Now())
			p.pollHeaders = append(p.pollHeaders, r.Header.Clone())
			p.mu.Unlock()
			if p.pollHook != nil && p.pollHook(w, r) {
				return
			}
		}
		if r.Method == http.MethodPost && r.URL.Path == "/v1/send" {
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			var req struct{ ID string }
			_ = json.Unmarshal(body, &req)
			p.mu.Lock()
			p.sends = append(p.sends, req.ID)
			p.mu.Unlock()
			if p.failSends.Add(-1) >= 0 {
				http.Error(w, "upstream unavailable", http.StatusServiceUnavailable)
				return
			}
		}
		rp.ServeHTTP(w, r)
	}))
	p.URL = srv.URL
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
		tr.CloseIdleConnections()
	})
	return p
}

func (p *httpProxy) pollTimes() []time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]time.Time(nil), p.polls...)
}

// pollHeadersSeen returns the header of every poll, in order.
func (p *httpProxy) pollHeadersSeen() []http.Header {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]http.Header(nil), p.pollHeaders...)
}

func (p *httpProxy) sendIDs() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.sends...)
}

// tcpProxy forwards TCP connections to a test server. It can blackhole the
// connections open now (server bytes stop reaching the client, and the
// client is never told), and it can be down (every connection is cut).
type tcpProxy struct {
	URL      string
	upstream string       // Static.
	ln       net.Listener // replaced by restart; guarded by mu

	down    atomic.Bool
	downHit atomic.Int32 // connections refused while down

	mu     sync.Mutex
	conns  map[*proxyConn]bool // Guarded by mu.
	gate   chan struct{}       // non-nil: new connections wait for it to close (hold); guarded by mu
	frames chan struct{}       // non-nil: a new WebSocket's first frames wait for it to close (holdFrames); guarded by mu
	held   chan struct{}       // a connection waits at the gate
	wg     sync.WaitGroup
}

type proxyConn struct {
	client, server net.Conn
	blackhole      atomic.Bool
}

func newTCPProxy(t testing.TB, upstream string) *tcpProxy {
	t.Helper()
	addr := strings.TrimPrefix(upstream, "http://")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{URL: "http://" + ln.Addr().String(), ln: ln, upstream: addr, conns: map[*proxyConn]bool{}, held: make(chan struct{}, 1)}
	p.wg.Add(1)
	go p.accept(ln, addr)
	t.Cleanup(func() {
		p.mu.Lock()
		p.ln.Close()
		for pc := range p.conns {
			pc.client.Close()
			pc.server.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *tcpProxy) accept(ln net.Listener, upstream string) {
	defer p.wg.Done()
	for {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		if p.down.Load() {
			p.downHit.Add(1)
			conn.Close()
			continue
		}
		p.mu.Lock()
		gate, frames := p.gate, p.frames
		p.mu.Unlock()
		if gate != nil {
			select {
			case p.held <- struct{}{}:
			default:
			}
			<-gate
		}
		srv, err := net.Dial("tcp", upstream)
		if err != nil {
			conn.Close()
			continue
		}
		pc := &proxyConn{client: conn, server: srv}
		p.mu.Lock()
		p.conns[pc] = true
		p.mu.Unlock()
		p.wg.Add(2)
		go func() { // client → server
			defer p.wg.Done()
			if frames != nil && !p.holdFirstFrames(conn, srv, frames) {
				srv.Close()
				return
			}
			_, _ = io.Copy(srv, conn)
			srv.Close()
		}()
		go func() { // server → client, unless blackholed
			defer p.wg.Done()
			buf := make([]byte, 32<<10)
			for {
				n, err := srv.Read(buf)
				if n > 0 && !pc.blackhole.Load() {
					if _, werr := conn.Write(buf[:n]); werr != nil {
						break
					}
				}
				if err != nil {
					break
				}
			}
			if pc.blackhole.Load() {
				return // a blackhole never tells the client; cleanup closes it
			}
			conn.Close()
			p.mu.Lock()
			delete(p.conns, pc)
			p.mu.Unlock()
		}()
	}
}

// blackhole silences every connection open now; new ones work.
func (p *tcpProxy) blackhole() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for pc := range p.conns {
		pc.blackhole.Store(true)
	}
}

// stop closes the listener, so that dials are refused as by a server
// that died, and every connection; restart listens again.
func (p *tcpProxy) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ln.Close()
	for pc := range p.conns {
		pc.client.Close()
		pc.server.Close()
	}
}

// restart listens again on the address stop closed (call it only after
// stop).
func (p *tcpProxy) restart(t testing.TB) {
	t.Helper()
	ln, err := net.Listen("tcp", strings.TrimPrefix(p.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Add(1)
	go p.accept(ln, p.upstream)
}

// cut closes every connection open now; new ones work.
func (p *tcpProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for pc := range p.conns {
		pc.client.Close()
		pc.server.Close()
	}
}

// hold makes new connections wait, accepted but not forwarded, until
// release (at the latest when the test ends). The first to wait is
// signalled on p.held; the others wait in the listen backlog behind it.
func (p *tcpProxy) hold(t testing.TB) (release func()) { return p.newGate(t, &p.gate) }

// newGate puts a new gate in *slot, a field guarded by p.mu, and returns
// its release, which takes it out of *slot (if still there) and opens
// it, once, at the latest when the test ends.
func (p *tcpProxy) newGate(t testing.TB, slot *chan struct{}) (release func()) {
	g := make(chan struct{})
	p.mu.Lock()
	*slot = g
	p.mu.Unlock()
	var once sync.Once
	release = func() {
		once.Do(func() {
			p.mu.Lock()
			if *slot == g {
				*slot = nil
			}
			p.mu.Unlock()
			close(g)
		})
	}
	t.Cleanup(release)
	return release
}

// holdFrames makes the next WebSocket connection's first frames from
// the client (what it sends after its upgrade request) wait, read but
// not forwarded, until release (at the latest when the test ends): the
// server upgrades the connection but hears nothing on it. Frames that
// wait are signalled on p.held.
func (p *tcpProxy) holdFrames(t testing.TB) (release func()) { return p.newGate(t, &p.frames) }

// holdFirstFrames forwards conn's first read to srv and, if it was a
// whole WebSocket upgrade request (the first since holdFrames), reads
// what comes next and forwards it only once frames closes. It reports
// whether the connection is still whole.
func (p *tcpProxy) holdFirstFrames(conn, srv net.Conn, frames chan struct{}) bool {
	buf := make([]byte, 16<<10)
	n, err := conn.Read(buf)
	if _, werr := srv.Write(buf[:n]); err != nil || werr != nil {
		return false
	}
	if !bytes.HasPrefix(buf[:n], []byte("GET /v1/ws")) || !bytes.HasSuffix(buf[:n], []byte("\r\n\r\n")) {
		return true
	}
	p.mu.Lock()
	mine := p.frames == frames
	p.frames = nil // the next connection goes through
	p.mu.Unlock()
	if !mine {
		return true
	}
	if n, err = conn.Read(buf); n > 0 {
		select {
		case p.held <- struct{}{}:
		default:
		}
		<-frames
		if _, werr := srv.Write(buf[:n]); werr != nil {
			return false
		}
	}
	return err == nil
}

// setDown cuts every connection and refuses new ones, or restores service.
func (p *tcpProxy) setDown(down bool) {
	p.down.Store(down)
	if !down {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for pc := range p.conns {
		pc.client.Close()
		pc.server.Close()
	}
}
