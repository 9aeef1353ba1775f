package httpapi

import (
	"context"
	"net/http"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/core/protocol"
	"github.com/chatd/chatd/transports/httpx"
)

// me serves GET /v1/me: {"user","name"}, the name the user shows as
// (their chosen one, else their token's).
func (s *Server) me(w http.ResponseWriter, r *http.Request) {
	p, err := s.cfg.Hub.Me(r.Context(), httpx.IdentityFrom(r.Context()))
	if err != nil {
		httpx.WriteError(w, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, p)
}

// setMe serves PUT /v1/me {"name"}: the user's display name from now on,
// answered like GET /v1/me. A name that is not a display name is
// bad_request; renaming too often, rate_limited.
func (s *Server) setMe(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Name *string `json:"name"`
	}
	if err := httpx.DecodeJSON(w, r, &body); err != nil {
		httpx.WriteError(w, err)
		return
	}
	if body.Name == nil {
		httpx.WriteError(w, protocol.Errorf(protocol.CodeBadRequest, "the body needs a name"))
		return
	}
	p, err := s.cfg.Hub.SetName(r.Context(), httpx.IdentityFrom(r.Context()), *body.Name)
	if err != nil {
		httpx.WriteError(w, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, p)
}

// roomList is the answer of GET /v1/rooms.
type roomList struct {
	Rooms []core.RoomEntry `json:"rooms"`
}

// rooms serves GET /v1/rooms: the user's room list (see core.Hub.Rooms).
func (s *Server) rooms(w http.ResponseWriter, r *http.Request) {
	rooms, err := s.cfg.Hub.Rooms(r.Context(), httpx.IdentityFrom(r.Context()))
	if err != nil {
		httpx.WriteError(w, err)
		return
	}
	if rooms == nil {
		rooms = []core.RoomEntry{}
	}
	httpx.WriteJSON(w, http.StatusOK, roomList{Rooms: rooms})
}

// join serves POST /v1/join {"room"}: the room joins the user's list and
// their sessions are told, as a stream's join does (see core.Hub.Remember).
func (s *Server) join(w http.ResponseWriter, r *http.Request) { s.listChange(w, r, s.cfg.Hub.Remember) }

// leave serves POST /v1/leave {"room"}: the room leaves the user's list
// and their sessions are told (see core.Hub.Leave).
func (s *Server) leave(w http.ResponseWriter, r *http.Request) { s.listChange(w, r, s.cfg.Hub.Leave) }

// listChange serves a change of the user's room list, body {"room"}, by
// change, and answers an ack.
func (s *Server) listChange(w http.ResponseWriter, r *http.Request, change func(context.Context, auth.Identity, string) error) {
	var body struct{ Room string }
	if err := httpx.DecodeJSON(w, r, &body); err != nil {
		httpx.WriteError(w, err)
		return
	}
	if err := change(r.Context(), httpx.IdentityFrom(r.Context()), body.Room); err != nil {
		httpx.WriteError(w, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, protocol.Envelope{Type: protocol.TypeAck, Room: body.Room})
}
