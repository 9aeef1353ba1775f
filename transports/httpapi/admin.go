package httpapi

import (
	"errors"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/chatd/chatd/core/protocol"
	"github.com/chatd/chatd/degrade"
	"github.com/chatd/chatd/featureflags"
	"github.com/chatd/chatd/transports/httpx"
)

// Node describes this server in the admin status.
type Node struct {
	ID      string    `json:"id"`
	Addr    string    `json:"addr"`
	Engine  string    `json:"engine"`
	Started time.Time `json:"started"`
}

func (s *Server) adminRoutes(r chi.Router) {
	r.Use(requireAdmin)
	r.Get("/status", s.adminStatus)
	r.Put("/level", s.adminLevel)
	r.Get("/flags", s.adminFlags)
	r.Put("/flags/{name}", s.adminSetFlag)
}

// status is the admin view of the node.
type status struct {
	Level       int                     `json:"level"`
	Mode        degrade.Mode            `json:"mode"`
	Until       *time.Time              `json:"until,omitempty"`
	Breakers    []degrade.BreakerStatus `json:"breakers"`
	Flags       []featureflags.Flag     `json:"flags"`
	Connections map[string]int          `json:"connections"`
	Nodes       []Node                  `json:"nodes"`
	History     []levelChange           `json:"history"`
	Load        load                    `json:"load"`
}

// load is the node's current readings, for the ops page's charts.
type load struct {
	Sessions    int     `json:"sessions"`
	DeliveryMS  float64 `json:"delivery_ms"` // recent average, fan-out to write
	FanoutMS    float64 `json:"fanout_ms"`
	StoreMS     float64 `json:"store_ms"` // recent average durable append
	SlowClosed  uint64  `json:"slow_closed"`
	WriteFailed uint64  `json:"write_failed"`
	Dropped     uint64  `json:"dropped"`
}

type levelChange struct {
	From int          `json:"from"`
	To   int          `json:"to"`
	Mode degrade.Mode `json:"mode"`
	By   string       `json:"by"`
	At   time.Time    `json:"at"`
}

func (s *Server) adminStatus(w http.ResponseWriter, _ *http.Request) {
	d := s.cfg.Policy.Controller
	mode, until := d.Mode()
	st := status{Level: int(d.Level()), Mode: mode, Breakers: d.Breakers(), Flags: s.cfg.Flags.Snapshot().All(),
		Connections: map[string]int{"websocket": 0, "sse": 0, "poll": 0}, Nodes: []Node{s.cfg.Node},
		History: []levelChange{}}
	if !until.IsZero() {
		st.Until = &until
	}
	for name, n := range s.cfg.Hub.Sessions() {
		st.Connections[name] = n
	}
	ls := s.cfg.Hub.Stats()
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	st.Load = load{Sessions: ls.Sessions, DeliveryMS: ms(ls.DeliveryLatency), FanoutMS: ms(ls.FanoutLatency),
		StoreMS: ms(ls.StoreLatency), SlowClosed: ls.SlowClosed, WriteFailed: ls.WriteFailed, Dropped: ls.Dropped}
	for _, c := range d.History() {
		st.History = append(st.History, levelChange{From: int(c.From), To: int(c.To), Mode: c.Mode, By: c.By, At: c.At})
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

func (s *Server) adminFlags(w http.ResponseWriter, _ *http.Request) {
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"flags": s.cfg.Flags.Snapshot().All(), "audit": s.cfg.Flags.Audit()})
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
	f, err := s.cfg.Flags.Update(name, cur.Enabled, cur.Rollout, actor(r))
	switch {
	case errors.Is(err, featureflags.ErrUnknownFlag):
		httpx.WriteError(w, protocol.Errorf(protocol.CodeNotFound, "no flag named %q", name))
	case err != nil:
		httpx.WriteError(w, protocol.Errorf(protocol.CodeBadRequest, "%v", err))
	default:
		httpx.WriteJSON(w, http.StatusOK, f)
	}
}
