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
	Files  interface{ Routes(chi.Router) }
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

// Handler returns the router. Every answer carries X-Content-Type-Options:
// nosniff. Only the streaming endpoints (/v1/ws, /v1/sse, /v1/poll) take a
// credential in the URL, and their query string is bounded by the rooms a
// connection may hold (httpx.MaxStreamQuery); every other /v1 route needs
// the Authorization header.
func (s *Server) Handler() http.Handler {
	r := chi.NewRouter()
	// First, while the stack is shallow: see GrowStack.
	r.Use(httpx.GrowStack(Path("websocket")))
	r.Use(httpx.Report(s.cfg.Hub), middleware.Recoverer, s.access.Middleware, nosniff, s.cfg.Origins.Middleware)
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
			}
		}
		r.Post("/dev/login", s.devLogin)
		r.Group(func(r chi.Router) {
			r.Use(s.auth.Require)
			r.Get("/negotiate", s.negotiate)
			r.Post("/ticket", s.ticket)
			r.Post("/send", s.send)
			r.Post("/edit", s.edit)
			r.Post("/delete", s.delete)
			r.Post("/read", s.read)
			r.Post("/typing", s.typing)
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
		r.Handle("/*", s.cfg.Web)
	}
	r.NotFound(func(w http.ResponseWriter, _ *http.Request) { httpx.WriteError(w, errNotFound) })
	r.MethodNotAllowed(func(w http.ResponseWriter, _ *http.Request) { httpx.WriteError(w, errMethod) })
	return r
}

var errEngineDown = protocol.Errorf(protocol.CodeUnavailable, "the engine is unreachable")

var transportPaths = map[string]string{"websocket": "/ws", "sse": "/sse", "poll": "/poll"}

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
