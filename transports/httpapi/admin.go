package httpapi

import (
	"errors"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/chatd/chatd/core/protocol"
	"github.com/chatd/chatd/degrade"
	"github.com/chatd/chatd/featureflags"
	"github.com/chatd/chatd/featureflags/rollout"
	"github.com/chatd/chatd/transports/httpx"
)

func (s *Server) adminRoutes(r chi.Router) {
	r.Use(requireAdmin)
	r.Get("/status", s.adminStatus)
	r.Put("/level", s.adminLevel)
	r.Get("/flags", s.adminFlags)
	r.Put("/flags/{name}", s.adminSetFlag)
	if s.cfg.Rollouts != nil {
		r.Route("/rollouts", s.rolloutRoutes)
	}
}

// status is the admin view of the node, and of the cluster it is part of.
type status struct {
	Level        int                     `json:"level"`
	Mode         degrade.Mode            `json:"mode"`
	Until        *time.Time              `json:"until,omitempty"`
	AutoLevel    int                     `json:"auto_level"` // this node's own breakers' level
	Floor        int                     `json:"floor"`      // the other live nodes' highest auto level
	Breakers     []degrade.BreakerStatus `json:"breakers"`
	Flags        []featureflags.Flag     `json:"flags"`
	Connections  map[string]int          `json:"connections"`
	Nodes        []NodeStatus            `json:"nodes"`
	History      []LevelChange           `json:"history"` // oldest first
	Load         Load                    `json:"load"`
	ClusterError string                  `json:"cluster_error,omitempty"` // why the cluster's view is missing
	Rollouts     []rollout.Plan          `json:"rollouts"`                // guarded rollouts, in progress or ended
}

// adminStatus serves GET /v1/admin/status: the level, this node's
// breakers, connections and load, the flags, and the live nodes and the
// level history (the cluster's, on a cluster; this node's otherwise, or
// when the shared state cannot be read, with cluster_error saying why).
func (s *Server) adminStatus(w http.ResponseWriter, r *http.Request) {
	d := s.cfg.Policy.Controller
	self := s.Self()
	mode, until := d.Mode()
	st := status{Level: self.Level, Mode: mode, AutoLevel: self.AutoLevel, Floor: int(d.Floor()),
		Breakers: d.Breakers(), Flags: s.cfg.Flags.Snapshot().All(), Connections: self.Connections,
		Nodes: []NodeStatus{self}, History: []LevelChange{}, Load: self.Load, Rollouts: []rollout.Plan{}}
	if s.cfg.Rollouts != nil {
		st.Rollouts = s.cfg.Rollouts.Plans()
	}
	if !until.IsZero() {
		st.Until = &until
	}
	for _, c := range d.History() {
		st.History = append(st.History, LevelChange{From: int(c.From), To: int(c.To), Mode: c.Mode, By: c.By,
			At: c.At, Node: self.ID, Remote: c.Remote})
	}
	if c := s.cfg.Cluster; c != nil {
		var errs []error
		if nodes, err := c.Nodes(r.Context()); err != nil {
			errs = append(errs, err)
		} else {
			st.Nodes = nodes
		}
		if hist, err := c.LevelHistory(r.Context()); err != nil {
			errs = append(errs, err)
		} else {
			st.History = hist
		}
		if len(errs) > 0 {
			st.ClusterError = errors.Join(errs...).Error()
		}
	}
	httpx.WriteJSON(w, http.StatusOK, st)
}

func actor(r *http.Request) string { return "admin:" + httpx.IdentityFrom(r.Context()).User }

func (s *Server) adminLevel(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Level *int   `json:"level"`
		Mode  string `json:"mode"`
		For   string `json:"for"` // a Go duration, e.g. "30m"; manual only
	}
	if err := httpx.DecodeJSON(w, r, &body); err != nil {
		httpx.WriteError(w, err)
		return
	}
	switch body.Mode {
	case string(degrade.Auto):
		s.cfg.Policy.Controller.SetAuto(actor(r))
	case string(degrade.Manual), "":
		if body.Level == nil {
			httpx.WriteError(w, protocol.Errorf(protocol.CodeBadRequest, `manual mode needs "level" 0 to 3`))
			return
		}
		var d time.Duration
		if body.For != "" {
			var err error
			if d, err = time.ParseDuration(body.For); err != nil || d < 0 {
				httpx.WriteError(w, protocol.Errorf(protocol.CodeBadRequest, `"for" must be a duration such as "30m"`))
				return
			}
		}
		if err := s.cfg.Policy.Controller.SetManual(degrade.Level(*body.Level), d, actor(r)); err != nil {
			httpx.WriteError(w, protocol.Errorf(protocol.CodeBadRequest, "%v", err))
			return
		}
	default:
		httpx.WriteError(w, protocol.Errorf(protocol.CodeBadRequest, `mode must be "manual" or "auto"`))
		return
	}
	s.adminStatus(w, r)
}

// adminFlags serves GET /v1/admin/flags: the flags and their audit, the
// cluster's on a cluster (this node's, with cluster_error, when the shared
// state cannot be read).
func (s *Server) adminFlags(w http.ResponseWriter, r *http.Request) {
	body := map[string]any{"flags": s.cfg.Flags.Snapshot().All(), "audit": s.cfg.Flags.Audit()}
	if c := s.cfg.Cluster; c != nil {
		if audit, err := c.FlagAudit(r.Context()); err != nil {
			body["cluster_error"] = err.Error()
		} else {
			body["audit"] = audit
		}
	}
	httpx.WriteJSON(w, http.StatusOK, body)
}

// flagWriter is where admin flag changes go: the cluster's shared state,
// or this node's store.
func (s *Server) flagWriter() featureflags.Writer {
	if s.cfg.Cluster != nil {
		return s.cfg.Cluster
	}
	return s.cfg.Flags
}

func (s *Server) adminSetFlag(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, "name")
	cur, ok := s.cfg.Flags.Snapshot().Get(name)
	if !ok {
		httpx.WriteError(w, protocol.Errorf(protocol.CodeNotFound, "no flag named %q", name))
		return
	}
	body := struct {
		Enabled *bool `json:"enabled"`
		Rollout *int  `json:"rollout"`
	}{}
	if err := httpx.DecodeJSON(w, r, &body); err != nil {
		httpx.WriteError(w, err)
		return
	}
	if body.Enabled != nil {
		cur.Enabled = *body.Enabled
	}
	if body.Rollout != nil {
		cur.Rollout = *body.Rollout
	}
	f, err := s.flagWriter().Update(name, cur.Enabled, cur.Rollout, actor(r))
	var perr *protocol.Error
	switch {
	case errors.Is(err, featureflags.ErrUnknownFlag):
		httpx.WriteError(w, protocol.Errorf(protocol.CodeNotFound, "no flag named %q", name))
	case errors.As(err, &perr):
		httpx.WriteError(w, perr)
	case err != nil:
		httpx.WriteError(w, protocol.Errorf(protocol.CodeBadRequest, "%v", err))
	default:
		httpx.WriteJSON(w, http.StatusOK, f)
	}
}
