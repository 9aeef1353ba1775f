package httpapi

import (
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/protocol"
	"github.com/chatd/chatd/degrade"
	"github.com/chatd/chatd/transports/httpx"
)

var (
	errNotFound = protocol.Errorf(protocol.CodeNotFound, "no such endpoint")
	errMethod   = protocol.Errorf(protocol.CodeBadRequest, "method not allowed")
	errNotReady = protocol.Errorf(protocol.CodeUnavailable, "not ready")
	// errTicketCred refuses a ticket to anything but a bearer JWT.
	errTicketCred = protocol.Errorf(protocol.CodeUnauthorized, "a ticket is issued for Authorization: Bearer <token> only")
)

// offer is the negotiate answer for one user.
type offer struct {
	degrade.Offer
	HeartbeatMS int64 `json:"heartbeat_ms"`
	// Ticket is what POST /v1/ticket would answer, given with the offer
	// so that connecting costs one round trip less: negotiate, then the
	// stream. Only for a bearer JWT, as /v1/ticket: a ticket never buys a
	// ticket.
	Ticket          string `json:"ticket,omitempty"`
	TicketExpiresIn int    `json:"ticket_expires_in,omitempty"`
}

func (s *Server) negotiate(w http.ResponseWriter, r *http.Request) {
	id := httpx.IdentityFrom(r.Context())
	o := offer{Offer: s.cfg.Policy.Offer(id.User), HeartbeatMS: s.cfg.Hub.Config().Heartbeat.Milliseconds()}
	if s.cfg.Tickets != nil && httpx.CredentialFrom(r.Context()) == httpx.CredBearer {
		// An identity no ticket can carry gets the offer without one; its
		// POST /v1/ticket then says why, as before.
		if t, err := s.cfg.Tickets.Issue(id); err == nil {
			o.Ticket, o.TicketExpiresIn = t, int(s.cfg.Tickets.TTL()/time.Second)
		}
	}
	httpx.WriteJSON(w, http.StatusOK, o)
}

// ticket issues a ticket for the bearer JWT's identity. A ticket never
// buys a ticket: Require already takes the header only, and a ticket is no
// JWT, but the credential is checked here too so that no route change can
// let a leaked ticket renew itself.
func (s *Server) ticket(w http.ResponseWriter, r *http.Request) {
	if httpx.CredentialFrom(r.Context()) != httpx.CredBearer {
		httpx.WriteError(w, errTicketCred)
		return
	}
	t, err := s.cfg.Tickets.Issue(httpx.IdentityFrom(r.Context()))
	if err != nil {
		httpx.WriteError(w, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"ticket": t, "expires_in": int(s.cfg.Tickets.TTL() / time.Second)})
}

// devLogin exists only in dev mode (no key configured).
func (s *Server) devLogin(w http.ResponseWriter, r *http.Request) {
	if !s.cfg.Verifier.DevMode() {
		httpx.WriteError(w, errNotFound)
		return
	}
	if !devHost(r.Host) {
		httpx.WriteError(w, protocol.Errorf(protocol.CodeForbidden,
			"dev login answers only to an IP address or localhost, not to a DNS name"))
		return
	}
	var body struct {
		Name  string `json:"name"`
		Admin bool   `json:"admin"`
	}
	if err := httpx.DecodeJSON(w, r, &body); err != nil {
		httpx.WriteError(w, err)
		return
	}
	tok, err := s.cfg.Verifier.IssueDev(body.Name, body.Admin, 24*time.Hour)
	if err != nil {
		httpx.WriteError(w, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]string{"token": tok})
}

// send serves POST /v1/send: {"room","id","text","files"?}, files a
// list of file ids. It answers the ack.
func (s *Server) send(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Room, ID, Text string
		Files          []string
	}
	if err := httpx.DecodeJSON(w, r, &body); err != nil {
		httpx.WriteError(w, err)
		return
	}
	m, err := s.cfg.Hub.SendFiles(r.Context(), httpx.IdentityFrom(r.Context()), body.Room, body.ID, body.Text, body.Files)
	if err != nil {
		httpx.WriteError(w, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, m.Ack())
}

func (s *Server) read(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Room string
		Seq  uint64
	}
	if err := httpx.DecodeJSON(w, r, &body); err != nil {
		httpx.WriteError(w, err)
		return
	}
	seq, err := s.cfg.Hub.Read(r.Context(), httpx.IdentityFrom(r.Context()), body.Room, body.Seq)
	if err != nil {
		httpx.WriteError(w, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, protocol.Envelope{Type: protocol.TypeAck, Room: body.Room, Seq: seq})
}

func (s *Server) typing(w http.ResponseWriter, r *http.Request) {
	var body struct{ Room string }
	if err := httpx.DecodeJSON(w, r, &body); err != nil {
		httpx.WriteError(w, err)
		return
	}
	if err := s.cfg.Hub.Typing(r.Context(), httpx.IdentityFrom(r.Context()), body.Room); err != nil {
		httpx.WriteError(w, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, protocol.Envelope{Type: protocol.TypeAck, Room: body.Room})
}

// historyPage is the history answer: one page, oldest first.
type historyPage struct {
	Messages []protocol.Envelope `json:"messages"`
	Head     uint64              `json:"head"`
	First    uint64              `json:"first"`
}

func (s *Server) history(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	before, err1 := optUint(q.Get("before"))
	limit, err2 := optUint(q.Get("limit"))
	if err1 != nil || err2 != nil {
		httpx.WriteError(w, protocol.Errorf(protocol.CodeBadRequest, "before and limit must be whole numbers"))
		return
	}
	p, err := s.cfg.Hub.History(r.Context(), httpx.IdentityFrom(r.Context()), roomParam(r), before, int(min(limit, core.MaxHistoryLimit)))
	if err != nil {
		httpx.WriteError(w, err)
		return
	}
	out := historyPage{Messages: make([]protocol.Envelope, len(p.Messages)), Head: p.Head, First: p.First}
	for i, m := range p.Messages {
		out.Messages[i] = m.Envelope()
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}

func (s *Server) presence(w http.ResponseWriter, r *http.Request) {
	users, err := s.cfg.Hub.Presence(r.Context(), httpx.IdentityFrom(r.Context()), roomParam(r))
	if err != nil {
		httpx.WriteError(w, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"users": users})
}

func (s *Server) reads(w http.ResponseWriter, r *http.Request) {
	reads, err := s.cfg.Hub.Reads(r.Context(), httpx.IdentityFrom(r.Context()), roomParam(r))
	if err != nil {
		httpx.WriteError(w, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"reads": reads})
}

// roomParam returns the {room} path segment, unescaped: clients escape
// names such as dm:a:b or names with a slash.
func roomParam(r *http.Request) string {
	raw := chi.URLParam(r, "room")
	if room, err := url.PathUnescape(raw); err == nil {
		return room
	}
	return raw
}

func optUint(s string) (uint64, error) {
	if s == "" {
		return 0, nil
	}
	return strconv.ParseUint(s, 10, 64)
}

// devHost reports whether host, a request's Host, names the server in a
// way DNS rebinding cannot: an IP address, or localhost. A page on any
// site can make a browser send requests, with that site's own name as
// Host and Origin, to a name of its own that resolves to 127.0.0.1: a
// developer's dev-mode server, whose login needs no secret, was then open
// to every site they visited. Its login answers to a Host no site can
// own.
func devHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if net.ParseIP(host) != nil {
		return true
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	return host == "localhost" || strings.HasSuffix(host, ".localhost")
}
