package transporttest

import (
	"crypto/rand"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/core/bolt"
	"github.com/chatd/chatd/core/protocol"
)

// Secret is the HS256 secret test servers trust.
const Secret = "transporttest-secret"

// Options tune a test server. The zero value is a server with the
// hub's defaults.
type Options struct {
	Hub          core.Config   // Verifier, Metrics and Logger are filled in
	MaxMessages  int           // per-room retention; default 10000
	PollHold     time.Duration // longest poll hold; the poll default (25s)
	PollInterval time.Duration // poll interval (presence leases are twice it); 5s
	SSERetry     time.Duration // the SSE retry: hint; 2s
	NoPollLane   bool          // every poll through net/http (node.Config.NoPollLane)
	Web          http.Handler  // served at /, for browser tests
	// Degrade wires degradation as chatd runs it (a controller without
	// load signals, the policy, greetings, the admin API); see node.Config.
	Degrade bool
	// Dev runs a one-node Env in dev mode, as chatd without a key: the
	// verifier makes its own secret and POST /v1/dev/login issues
	// tokens. Token does not work then.
	Dev bool
	// Plain makes the test clients leave batch=1 out, as a client of the
	// contract's first version does: they get every read position and
	// presence change in the plain form.
	Plain bool
	// Engine, if set, wraps the store the hub runs on, for a test that
	// must hold a store call at a known point.
	Engine func(core.Engine) core.Engine
	// Wrap, if set, wraps the node's HTTP handler (the lane's requests
	// too), for a test that must hold a request at a known point.
	Wrap   func(http.Handler) http.Handler
	Logger *slog.Logger
}

// batchQuery is the query that asks for batched envelopes, unless the
// Env's clients are Plain.
func (e *Env) batchQuery() string {
	if e.opts.Plain {
		return ""
	}
	return protocol.BatchParam + "=1"
}

// Env is a running server. Restart replaces Store, Hub and URL.
type Env struct {
	URL      string
	Hub      *core.Hub
	Store    *bolt.Store
	Verifier *auth.Verifier
	Tickets  *auth.Tickets
	// TicketKey is the key Tickets signs with: a test can issue tickets
	// of another life that the server takes.
	TicketKey []byte
	Dir       string

	opts Options
	log  *slog.Logger
	stop func(t testing.TB)
}

// NewEnv starts a server that stops when the test ends.
func NewEnv(t testing.TB, opts Options) *Env {
	t.Helper()
	v := newVerifier(t)
	if opts.Dev {
		var err error
		if v, err = auth.NewVerifier(auth.Config{}); err != nil {
			t.Fatal(err)
		}
	}
	key := make([]byte, 32)
	rand.Read(key) // never fails: see crypto/rand.Read
	e := &Env{Verifier: v, Tickets: auth.NewTickets(key, time.Minute, nil), TicketKey: key, Dir: t.TempDir(),
		opts: opts, log: opts.logger()}
	e.start(t, "")
	t.Cleanup(func() { e.stop(t) })
	return e
}

// Restart stops the server as a crash would leave it to the next process
// (its store flushed, no state handed over) and starts a new one on the
// same data, on the same address. It proves that nothing a client needs
// lives in the server between requests.
func (e *Env) Restart(t testing.TB) {
	t.Helper()
	if e.Store == nil {
		t.Fatal("transporttest: Restart is for a one-node Env; a cluster node goes with Cluster.Stop or Kill")
	}
	addr := strings.TrimPrefix(e.URL, "http://")
	e.stop(t)
	e.start(t, addr)
}

// start builds the store, hub and server; addr "" picks a free port.
func (e *Env) start(t testing.TB, addr string) {
	t.Helper()
	store, err := bolt.Open(bolt.Config{
		Path: filepath.Join(e.Dir, "chat.db"), MaxMessages: e.opts.MaxMessages, Logger: e.log,
	})
	if err != nil {
		t.Fatal(err)
	}
	var engine core.Engine = store
	if e.opts.Engine != nil {
		engine = e.opts.Engine(store)
	}
	s := serve(nodeConfig(e.opts, engine, e.Verifier, e.Tickets, e.log), listen(t, addr), e.opts.Wrap)
	e.URL, e.Hub, e.Store = s.URL, s.Node.Hub, store
	e.stop = func(t testing.TB) {
		s.close(t)
		if err := store.Close(); err != nil {
			t.Errorf("store close: %v", err)
		}
		e.stop = func(testing.TB) {}
	}
}

// Claims are what a test token says. Zero Expires means an hour from now.
type Claims struct {
	Name    string
	Rooms   []string
	Admin   bool
	Expires time.Time
}

// Token returns a signed HS256 token for user.
func (e *Env) Token(t testing.TB, user string, c Claims) string {
	t.Helper()
	if c.Expires.IsZero() {
		c.Expires = time.Now().Add(time.Hour)
	}
	mc := jwt.MapClaims{"sub": user, "exp": c.Expires.Unix()}
	if c.Name != "" {
		mc["name"] = c.Name
	}
	if c.Rooms != nil {
		mc["rooms"] = c.Rooms
	}
	if c.Admin {
		mc["admin"] = true
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, mc).SignedString([]byte(Secret))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// Flip changes every character of s to another one of the base64url
// alphabet. A token or ticket whose last four characters are flipped no
// longer verifies: the fourth from last carries six bits of its MAC
// (replacing only the last two may leave them all, since the last
// character holds padding bits).
func Flip(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
	}
	return string(b)
}
