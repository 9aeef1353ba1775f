package transporttest

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/core/bolt"
	"github.com/chatd/chatd/core/protocol"
	"github.com/chatd/chatd/transports/httpapi"
	"github.com/chatd/chatd/transports/httpx"
	"github.com/chatd/chatd/transports/poll"
	"github.com/chatd/chatd/transports/sse"
	"github.com/chatd/chatd/transports/ws"
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
	Logger       *slog.Logger
}

// Env is a running server.
type Env struct {
	URL      string
	Hub      *core.Hub
	Store    *bolt.Store
	Verifier *auth.Verifier
	Tickets  *auth.Tickets
	Dir      string
}

// NewEnv starts a server that stops when the test ends.
func NewEnv(t testing.TB, opts Options) *Env {
	t.Helper()
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	v, err := auth.NewVerifier(auth.Config{HMACSecret: []byte(Secret)})
	if err != nil {
		t.Fatal(err)
	}
	e := &Env{Verifier: v, Tickets: auth.NewTickets(nil, time.Minute, nil), Dir: t.TempDir()}
	var hub *core.Hub
	e.Store, err = bolt.Open(bolt.Config{
		Path: filepath.Join(e.Dir, "chat.db"), MaxMessages: opts.MaxMessages, Logger: log,
		OnCommit: func(m []protocol.Message) { hub.Publish(m) },
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg := opts.Hub
	cfg.Verifier, cfg.Logger = v, log
	hub = core.New(e.Store, cfg)
	e.Hub = hub
	authn := &httpx.Authenticator{Verifier: v, Tickets: e.Tickets}
	api := httpapi.New(httpapi.Config{
		Hub: hub, Verifier: v, Tickets: e.Tickets, Logger: log,
		Transports: map[string]http.Handler{
			ws.Name:   ws.New(ws.Config{Hub: hub, Auth: authn, Logger: log}),
			sse.Name:  sse.New(sse.Config{Hub: hub, Auth: authn, Logger: log}),
			poll.Name: poll.New(poll.Config{Hub: hub, Auth: authn, Logger: log, Hold: opts.PollHold, Interval: opts.PollInterval}),
		},
	})
	api.SetReady(true)
	srv := httptest.NewServer(api.Handler())
	e.URL = srv.URL
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := hub.Shutdown(ctx); err != nil {
			t.Errorf("hub shutdown: %v", err)
		}
		srv.Close()
		if err := e.Store.Close(); err != nil {
			t.Errorf("store close: %v", err)
		}
	})
	return e
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
