package transporttest

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/transports/httpx"
	"github.com/chatd/chatd/transports/node"
)

// server is one node served on loopback: the part of a test server that
// Env (one node on the embedded engine) and Cluster (several on Redis)
// share. The caller owns the engine.
type server struct {
	URL  string     // static after serve
	Node *node.Node // static after serve
	srv  *httptest.Server

	mute atomic.Bool // set by kill's first step: nothing more goes out

	mu    sync.Mutex
	conns map[net.Conn]struct{} // accepted and not closed by net/http, hijacked ones included; guarded by mu
}

// muteListener hands out connections that write nothing once their
// server is muted, as a dead process writes nothing.
type muteListener struct {
	net.Listener
	s *server // Static after construction.
}

func (l muteListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &muteConn{Conn: c, s: l.s}, nil
}

// muteConn is a connection of a server that may be muted.
type muteConn struct {
	net.Conn
	s *server // Static after construction.
}

// errMuted is what a write on a muted server's connection returns.
var errMuted = errors.New("transporttest: the node is dead")

func (c *muteConn) Write(p []byte) (int, error) {
	if c.s.mute.Load() {
		return 0, errMuted
	}
	return c.Conn.Write(p)
}

// TryWrite is Write without waiting (httpx.TryWriter), so that a
// writer's slot is kept through its writes here as it is on chatd's own
// connections.
func (c *muteConn) TryWrite(p []byte) (int, error) {
	if c.s.mute.Load() {
		return 0, errMuted
	}
	return httpx.TryWrite(c.Conn, p)
}

// NetConn returns the connection it wraps, as tls.Conn's does, so that
// httpx.Cork reaches the socket (writes still go through Write).
func (c *muteConn) NetConn() net.Conn { return c.Conn }

// CloseWrite shuts the write side, as *net.TCPConn does.
func (c *muteConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errMuted
}

// logger is opts.Logger, or one that discards.
func (opts Options) logger() *slog.Logger {
	if opts.Logger != nil {
		return opts.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// nodeConfig is the node.Config of a test server over engine, from opts.
func nodeConfig(opts Options, engine core.Engine, v *auth.Verifier, tickets *auth.Tickets, log *slog.Logger) node.Config {
	return node.Config{
		Engine: engine, Verifier: v, Tickets: tickets, Hub: opts.Hub,
		PollHold: opts.PollHold, PollInterval: opts.PollInterval, SSERetry: opts.SSERetry, NoPollLane: opts.NoPollLane,
		Web: opts.Web, Logger: log, Degrade: opts.Degrade,
	}
}

// listen listens on addr; "" picks a free loopback port.
func listen(t testing.TB, addr string) net.Listener {
	t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen on %s: %v", addr, err)
	}
	return ln
}

// newVerifier is the verifier every test server has: HS256 with Secret.
func newVerifier(t testing.TB) *auth.Verifier {
	t.Helper()
	v, err := auth.NewVerifier(auth.Config{HMACSecret: []byte(Secret)})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// serve builds a node from cfg, marks it ready and serves it on ln,
// through wrap if it is not nil.
func serve(cfg node.Config, ln net.Listener, wrap func(http.Handler) http.Handler) *server {
	n := node.New(cfg)
	n.API.SetReady(true)
	s := &server{Node: n, conns: make(map[net.Conn]struct{})}
	h := n.Handler()
	if wrap != nil {
		h = wrap(h)
	}
	s.srv = httptest.NewUnstartedServer(h)
	s.srv.Listener.Close()
	s.srv.Listener = muteListener{Listener: ln, s: s}
	s.srv.Config.ConnState = s.track          // httptest chains its own hook before this one
	s.srv.Config.ConnContext = httpx.KeepConn // as chatd: for Cork (a WebSocket's 101 goes with its first frames) and ClientGone
	if n.Lane != nil {
		n.Lane.Attach(s.srv.Config)
	}
	s.srv.Start()
	s.URL = s.srv.URL
	return s
}

// track keeps every connection until net/http closes it. A hijacked one
// (WebSocket, a hijacked SSE stream, a parked poll) stays, since net/http
// no longer sees it close; kill closes it.
func (s *server) track(c net.Conn, state http.ConnState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch state {
	case http.StateNew:
		s.conns[c] = struct{}{}
	case http.StateClosed:
		delete(s.conns, c)
	}
}

// close stops the node as chatd drains on SIGTERM: not ready, every
// session told to go (bounded by 10 s), then the HTTP server. The caller
// then closes the engine.
func (s *server) close(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Node.Close(ctx); err != nil {
		t.Errorf("node close: %v", err)
	}
	s.srv.CloseClientConnections()
	s.srv.Close()
}

// silence makes the node write nothing more to any client, as the death
// of the process does; kill then takes its connections away. Between
// the two, Cluster.Kill cuts the node off from Redis, and what a handler
// makes of that (an internal error) must not reach a client.
func (s *server) silence() { s.mute.Store(true) }

// kill takes the listener and every connection away at once, as the
// death of the process does: no session is told anything, clients see
// their connection drop. The node's goroutines live on, cut off; close
// still stops them.
func (s *server) kill() {
	s.silence()
	s.srv.Listener.Close()
	s.mu.Lock()
	conns := s.conns
	s.conns = make(map[net.Conn]struct{})
	s.mu.Unlock()
	for c := range conns {
		c.Close()
	}
}
