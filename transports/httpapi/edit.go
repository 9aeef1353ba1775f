package httpapi

import (
	"net/http"

	"github.com/chatd/chatd/transports/httpx"
)

// amendBody is the body of POST /v1/edit and /v1/delete: the frame's
// fields, seq the message's.
type amendBody struct {
	Room string `json:"room"`
	ID   string `json:"id"`
	Seq  uint64 `json:"seq"`
	Text string `json:"text"`
}

// edit serves POST /v1/edit {"room","id","seq","text"}: it answers the
// ack of the stored edit, which carries the edit's own seq, or an error
// envelope (forbidden for another user's message, not_found for one that
// is gone, bad_request).
func (s *Server) edit(w http.ResponseWriter, r *http.Request) {
	var body amendBody
	if err := httpx.DecodeJSON(w, r, &body); err != nil {
		httpx.WriteError(w, err)
		return
	}
	m, err := s.cfg.Hub.Edit(r.Context(), httpx.IdentityFrom(r.Context()), body.Room, body.ID, body.Seq, body.Text)
	if err != nil {
		httpx.WriteError(w, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, m.Ack())
}

// delete serves POST /v1/delete {"room","id","seq"}: as edit, for a
// delete, which an admin may make too.
func (s *Server) delete(w http.ResponseWriter, r *http.Request) {
	var body amendBody
	if err := httpx.DecodeJSON(w, r, &body); err != nil {
		httpx.WriteError(w, err)
		return
	}
	m, err := s.cfg.Hub.Delete(r.Context(), httpx.IdentityFrom(r.Context()), body.Room, body.ID, body.Seq)
	if err != nil {
		httpx.WriteError(w, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, m.Ack())
}
