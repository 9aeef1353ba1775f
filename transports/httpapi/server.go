package httpapi

import (
	"log/slog"
	"net/http"
	"sync/atomic"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/core/protocol"
	"github.com/chatd/chatd/degrade"
	"github.com/chatd/chatd/featureflags"
	"github.com/chatd/chatd/featureflags/rollout"
	"github.com/chatd/chatd/transports/httpx"
)

// The hub logs the causes of internal errors that REST answers hide.
var _ httpx.CauseLogger = (*core.Hub)(nil)

// Config holds what the router wires together. Hub, Verifier and Tickets
// are required.
type Config struct {
	Hub      *core.Hub
	Verifier *auth.Verifier
	Tickets  *auth.Tickets
	Origins  *httpx.Origins // nil: same-origin only
	Metrics  http.Handler   // served at /metrics; nil: 404
	Web      http.Handler   // the static pages at /; nil: none
	// Transports are the streaming endpoints by name ("websocket" → /v1/ws).
	Transports map[string]http.Handler
	// Policy decides negotiate's offer; nil offers everything.
	Policy *degrade.Policy
	// Flags, with Policy.Controller, enables the admin API.
	Flags *featureflags.Store
	// Cluster is the state shared with the other nodes of the engine; the
	// admin API lists the live nodes and the cluster's history and audit
	// from it, and writes flag changes to it. nil: this node alone.
	Cluster Cluster
	// Health reports whether the engine can serve; /readyz answers 503
	// unavailable while it returns an error. nil: always healthy.
	Health func() error
	// Rollouts runs the guarded rollouts of the admin API
	// (/v1/admin/rollouts) and shows them in the admin status; nil: none.
	Rollouts *rollout.Manager
	// Files serves uploads and downloads (POST /v1/files, GET
	// /v1/files/{id} and its thumbnail) behind the bearer token; nil: none.
	Files interface{ Routes(chi.Router) }
	// Lane holds the kept-alive connections of the REST routes and the
	// pages while they wait for their next request (httpx.Lane.Keep);
	// nil: net/http does.
	Lane   *httpx.Lane
	Node   Node // this node, for the admin status
	Logger *slog.Logger
}

// Server is the HTTP face of one node.
type Server struct {
	// Static after construction.
	cfg    Config
	auth   *httpx.Authenticator
	access *httpx.AccessLog

	ready atomic.Bool // set by SetReady, read by /readyz
}

// New returns a Server. It is not ready until SetReady(true).
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Origins == nil {
		cfg.Origins = httpx.NewOrigins("")
	}
	return &Server{cfg: cfg, auth: &httpx.Authenticator{Verifier: cfg.Verifier, Tickets: cfg.Tickets},
		access: httpx.NewAccessLog(httpx.AccessLogConfig{Logger: cfg.Logger, Quiet: quiet})}
}

// SetReady flips /readyz.
func (s *Server) SetReady(v bool) { s.ready.Store(v) }

// Handler returns the node's HTTP handler: the router, with the
// streaming endpoints (/v1/ws, /v1/sse, /v1/poll) looked up before it,
// through the same middleware in the same order (see streamFirst). Serve
// it at the root: mounted under a prefix, the router would see paths that
// streamFirst does not. Every answer carries X-Content-Type-Options:
// nosniff. Only the streaming endpoints take a credential in the URL, and
// their query string is bounded by the rooms a connection may hold
// (httpx.MaxStreamQuery); every other /v1 route needs the Authorization
// header.
func (s *Server) Handler() http.Handler {
	r := chi.NewRouter()
	mw := chi.Middlewares{
		httpx.GrowStack(Path("websocket")), // first, while the stack is shallow: see GrowStack
		httpx.Report(s.cfg.Hub), middleware.Recoverer, s.access.Middleware, nosniff, s.cfg.Origins.Middleware,
	}
	r.Use(mw...)
	streams := streamFirst{next: r}
	keep := s.cfg.Lane.Keep // a nil Lane's is the identity
	r.Get("/healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	r.Get("/readyz", s.readyz)
	if s.cfg.Metrics != nil {
		r.Handle("/metrics", s.cfg.Metrics)
	}
	r.Route("/v1", func(r chi.Router) {
		stream := boundQuery(httpx.MaxStreamQuery(s.cfg.Hub.Config().MaxRoomsPerSession))
		for name, path := range transportPaths {
			if h := s.cfg.Transports[name]; h != nil {
				r.With(stream).Get(path, h.ServeHTTP)
				streams.set(path, mw.Handler(stream(h)))
			}
		}
		r.With(keep).Post("/dev/login", s.devLogin)
		r.Group(func(r chi.Router) {
			r.Use(keep, s.auth.Require)
			r.Get("/negotiate", s.negotiate)
			r.Post("/ticket", s.ticket)
			r.Post("/send", s.send)
			r.Post("/edit", s.edit)
			r.Post("/delete", s.delete)
			r.Post("/read", s.read)
			r.Post("/typing", s.typing)
			r.Post("/join", s.join)
			r.Post("/leave", s.leave)
			r.Get("/me", s.me)
			r.Put("/me", s.setMe)
			r.Get("/rooms", s.rooms)
			r.Get("/rooms/{room}/history", s.history)
			r.Get("/rooms/{room}/presence", s.presence)
			r.Get("/rooms/{room}/reads", s.reads)
			if s.cfg.Files != nil {
				s.cfg.Files.Routes(r)
			}
			if s.cfg.Policy != nil && s.cfg.Policy.Controller != nil && s.cfg.Flags != nil {
				r.Route("/admin", s.adminRoutes)
			}
		})
	})
	if s.cfg.Web != nil {
		r.Handle("/*", keep(s.cfg.Web))
	}
	r.NotFound(func(w http.ResponseWriter, _ *http.Request) { httpx.WriteError(w, errNotFound) })
	r.MethodNotAllowed(func(w http.ResponseWriter, _ *http.Request) { httpx.WriteError(w, errMethod) })
	return &streams
}

// streamFirst serves a GET of a streaming endpoint (/v1/ws, /v1/sse,
// /v1/poll) through the middleware that the router puts in front of it,
// without the router's lookup, and hands every other request to the
// router. A long-poll client makes one such request per answer, and a
// reconnect storm one per client: chi's tree walk, its route context
// and the mounted /v1 router's second walk were 5% of the node's CPU
// under a broadcast to 5,000 polls, about 4 µs a request
// (docs/PERFORMANCE-ROUNDS.md, the round of 5 December, 07:30). Only a path the
// router would match as written is taken (no escapes, which chi would
// match raw); anything else, a HEAD among it, gets the router's answer.
//
// What a transport sees differs from the router's only where nothing
// looks: the request has no chi route context and an empty Pattern. A
// transport or middleware that came to need either would have to be
// served by the router again. A new transport in transportPaths goes
// through the router until set and ServeHTTP name it.
type streamFirst struct {
	next          http.Handler // the router; static after Handler
	ws, sse, poll http.Handler // nil: not served; static after Handler
}

// set routes the GET of /v1+path to h.
func (f *streamFirst) set(path string, h http.Handler) {
	switch path {
	case wsPath:
		f.ws = h
	case ssePath:
		f.sse = h
	case pollPath:
		f.poll = h
	}
}

func (f *streamFirst) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet && r.URL.RawPath == "" {
		var h http.Handler
		switch r.URL.Path {
		case "/v1" + pollPath:
			h = f.poll
		case "/v1" + wsPath:
			h = f.ws
		case "/v1" + ssePath:
			h = f.sse
		}
		if h != nil {
			h.ServeHTTP(w, r)
			return
		}
	}
	f.next.ServeHTTP(w, r)
}

var errEngineDown = protocol.Errorf(protocol.CodeUnavailable, "the engine is unreachable")

// The streaming endpoints' paths under /v1.
const (
	wsPath   = "/ws"
	ssePath  = "/sse"
	pollPath = "/poll"
)

var transportPaths = map[string]string{"websocket": wsPath, "sse": ssePath, "poll": pollPath}

// LaneRoutes are the GET routes besides the poll's that a lane
// (httpx.Lane) may serve on a kept-alive connection it holds: each
// answers with a small JSON body written whole (httpx.WriteJSON) and
// needs nothing of net/http beyond a ResponseWriter. A page's and a
// client's reads at connect, so that the connection Keep handed to the
// lane serves them there rather than going back to net/http for each.
func LaneRoutes() []string { return []string{"/v1/negotiate", "/v1/me", "/v1/rooms"} }

// Path is the URL path of a transport's endpoint ("poll": /v1/poll), or
// "" for a name that is none.
func Path(transport string) string {
	if p, ok := transportPaths[transport]; ok {
		return "/v1" + p
	}
	return ""
}

// readyz serves GET /readyz: 200 once SetReady(true), 503 unavailable
// before, while draining, and while the engine is unhealthy (Health).
func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	if !s.ready.Load() || s.cfg.Hub.Closing() {
		httpx.WriteError(w, errNotReady)
		return
	}
	if s.cfg.Health != nil {
		if err := s.cfg.Health(); err != nil { // the cause is the engine's to log
			httpx.WriteError(w, errEngineDown)
			return
		}
	}
	w.Write([]byte("ready\n"))
}
