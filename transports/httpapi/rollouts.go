package httpapi

import (
	"errors"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/chatd/chatd/core/protocol"
	"github.com/chatd/chatd/featureflags/rollout"
	"github.com/chatd/chatd/transports/httpx"
)

// rolloutRoutes serves the guarded rollouts under /v1/admin/rollouts:
//
//	GET  /                  {"rollouts":[plan...]}
//	POST /                  a rollout.StartRequest → the plan
//	POST /{flag}/pause      → the plan
//	POST /{flag}/resume     → the plan
//	POST /{flag}/abort      {"to_zero":bool}? → the plan
func (s *Server) rolloutRoutes(r chi.Router) {
	r.Get("/", s.rollouts)
	r.Post("/", s.startRollout)
	r.Post("/{flag}/{op:pause|resume|abort}", s.changeRollout)
}

func (s *Server) rollouts(w http.ResponseWriter, _ *http.Request) {
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"rollouts": s.cfg.Rollouts.Plans()})
}

func (s *Server) startRollout(w http.ResponseWriter, r *http.Request) {
	var req rollout.StartRequest
	if err := httpx.DecodeJSON(w, r, &req); err != nil {
		httpx.WriteError(w, err)
		return
	}
	p, err := s.cfg.Rollouts.Start(r.Context(), req, actor(r))
	s.answerRollout(w, p, err)
}

func (s *Server) changeRollout(w http.ResponseWriter, r *http.Request) {
	var body struct {
		ToZero bool `json:"to_zero"`
	}
	if r.ContentLength != 0 {
		if err := httpx.DecodeJSON(w, r, &body); err != nil {
			httpx.WriteError(w, err)
			return
		}
	}
	m, flag, who := s.cfg.Rollouts, chi.URLParam(r, "flag"), actor(r)
	var p rollout.Plan
	var err error
	switch chi.URLParam(r, "op") {
	case "pause":
		p, err = m.Pause(r.Context(), flag, who)
	case "resume":
		p, err = m.Resume(r.Context(), flag, who)
	default:
		p, err = m.Abort(r.Context(), flag, who, body.ToZero)
	}
	s.answerRollout(w, p, err)
}

// answerRollout writes the plan, or maps the Manager's error: a bad request
// is 400, no plan 404, a plan in the way or in the wrong state 409; an
// error of the cluster's flag writer keeps its code; anything else is the
// plan store failing, which a retry may cure (503).
func (s *Server) answerRollout(w http.ResponseWriter, p rollout.Plan, err error) {
	var verr *rollout.ValidationError
	var perr *protocol.Error
	switch {
	case err == nil:
		httpx.WriteJSON(w, http.StatusOK, p)
	case errors.As(err, &verr):
		httpx.WriteError(w, protocol.Errorf(protocol.CodeBadRequest, "%s: %s", verr.Field, verr.Reason))
	case errors.Is(err, rollout.ErrNotFound):
		httpx.WriteError(w, protocol.Errorf(protocol.CodeNotFound, "no rollout plan for this flag"))
	case errors.Is(err, rollout.ErrExists):
		httpx.WriteError(w, protocol.Errorf(protocol.CodeConflict, "the flag already has a rollout in progress"))
	case errors.Is(err, rollout.ErrState):
		httpx.WriteError(w, protocol.Errorf(protocol.CodeConflict, "the plan's state does not allow this"))
	case errors.As(err, &perr):
		httpx.WriteError(w, perr)
	default:
		s.cfg.Logger.Warn("rollout: plan store failed", "err", err)
		httpx.WriteError(w, &protocol.Error{Code: protocol.CodeUnavailable, Message: "the rollout plans cannot be stored now; retry", Cause: err})
	}
}
