package core

import (
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/chatd/chatd/core/protocol"
)

// Observer sees per-user outcomes. Calls must be cheap and must not block.
type Observer interface {
	SessionOpened(user, transport string)
	SessionClosed(user, transport string, code int)
	ErrorReply(user, code string)
	Delivered(user string, latency time.Duration) // once per live message written
}

// An Observer is called from the hub's own paths, some of them under the
// hub's locks (a session opening is seen under the hub's mutex): besides
// being cheap, it must not call back into the Hub. SessionOpened and
// SessionClosed come in pairs per session; for poll they come per poll
// client (see SessionOptions.PresenceTTL), not per poll request.
// ErrorReply comes for every error envelope in a session and for every
// REST error answer whose request carried an identity (Hub.RequestError).

// Where an error reply went: the via label of chat_error_replies_total.
const (
	viaSession = "session" // an error envelope in a session
	viaHTTP    = "http"    // a REST error answer
)

// opened counts a session that has just connected, or the poll client it
// belongs to. Called by Session.start, with h.mu held.
func (h *Hub) opened(s *Session) {
	if s.opts.PresenceTTL > 0 {
		h.counters.polls.open(s)
		// The janitor ends lapsed poll clients, joined to a room or not;
		// this is startJanitor with h.mu held.
		if !h.janitorOn && !h.closing {
			h.janitorOn = true
			h.every(janitorEvery, h.expireLeases)
		}
		return
	}
	name := s.transport.Name()
	h.metrics.sessions.WithLabelValues(name).Inc()
	h.metrics.connects.WithLabelValues(name).Inc()
	if obs := h.cfg.Observer; obs != nil {
		obs.SessionOpened(s.user, name)
	}
}

// closed counts a session's end, once, from Session.Close. A poll
// session's end is its client's only when the client will not poll here
// again (see pollClients.close).
func (h *Hub) closed(s *Session, d Disconnect) {
	if s.opts.PresenceTTL > 0 {
		h.counters.polls.close(s, d)
		return
	}
	name := s.transport.Name()
	h.metrics.sessions.WithLabelValues(name).Dec()
	h.disconnected(s.user, name, d)
}

// disconnected counts a client's disconnect: the metric, the alert
// figures and the Observer.
func (h *Hub) disconnected(user, transport string, d Disconnect) {
	h.metrics.disconnects.WithLabelValues(transport, strconv.Itoa(d.Code), reasonLabel(d.Reason)).Inc()
	if !CleanClose(d.Code) {
		h.counters.figures.abnormal(transport, h.cfg.Now())
	}
	if obs := h.cfg.Observer; obs != nil {
		obs.SessionClosed(user, transport, d.Code)
	}
}

// CleanClose reports whether a close code ends a session cleanly: 1000
// (normal), 1001 (going away), 4001 (switch transport), 4012 (token
// expired) and 4013 (ticket expired). Every other code is an abnormal disconnect, as the alert on
// the disconnect rate counts them.
func CleanClose(code int) bool {
	switch code {
	case protocol.CloseNormal, protocol.CloseGoingAway, protocol.CloseSwitchTransport, protocol.CloseTokenExpired,
		protocol.CloseTicketExpired:
		return true
	}
	return false
}

// disconnectReasons is the fixed set of reason labels of
// chat_disconnects_total; any other reason counts as "other".
var disconnectReasons = map[string]bool{
	"normal": true, "answer complete": true, "slow consumer": true, "heartbeat timeout": true,
	"token expired": true, "ticket expired": true, "forbidden": true, "write failed": true, "frame too large": true,
	"server shutting down": true, "switch transport": true, "catch-up failed": true, "join failed": true,
}

// reasonLabel bounds a disconnect reason to the metric's fixed set. A
// reason that carries detail after a colon ("join failed: forbidden: ...")
// counts under its head: the detail is for the client and the log, and as
// a label it would make a new series per error text.
func reasonLabel(reason string) string {
	head, _, _ := strings.Cut(reason, ":")
	if disconnectReasons[head] {
		return head
	}
	return "other"
}

// errorReply counts an error answered to user by code and via, and tells
// the Observer when the user is known.
func (h *Hub) errorReply(user, code, via string) {
	h.metrics.errors.WithLabelValues(code, via).Inc()
	h.counters.figures.errorReply(code, h.cfg.Now())
	if obs := h.cfg.Observer; obs != nil && user != "" {
		obs.ErrorReply(user, code)
	}
}

// RequestError counts an error answered to a request outside any session
// (a REST call, a refused stream open) as chat_error_replies_total
// {code, via="http"}, and tells the Observer when user is not empty. The
// HTTP layer calls it from the one place it writes errors.
func (h *Hub) RequestError(user, code string) { h.errorReply(user, code, viaHTTP) }

// InternalError logs the cause of an error answered internal to a request
// outside any session, as a session's own are logged (the answer says
// only "internal error").
func (h *Hub) InternalError(user string, err error) {
	if errors.Is(err, ErrClosed) {
		return // shutting down, as a session's failures are not logged then
	}
	h.cfg.Logger.Error("request failed", "user", user, "via", viaHTTP, "err", err)
}

// MaxClientRTT is the longest round trip a client report may carry; a
// report outside (0, MaxClientRTT] is ignored.
const MaxClientRTT = time.Minute

// ClientRTT records a round trip a client measured and reported (ping to
// pong, or send to ack) into chat_client_rtt_seconds{transport}, unless it
// is outside (0, MaxClientRTT]; it reports whether it counted it.
// transport must be one of the node's transport names: callers bound
// what a client says before it becomes a label.
func (h *Hub) ClientRTT(transport string, rtt time.Duration) bool {
	if rtt <= 0 || rtt > MaxClientRTT {
		return false
	}
	h.metrics.rtt.WithLabelValues(transport).Observe(rtt.Seconds())
	h.counters.figures.rtt(rtt, h.cfg.Now())
	return true
}

// reportedRTT records the rtt_ms a client put on an envelope of s.
func (s *Session) reportedRTT(ms float64) {
	if ms > 0 && ms <= float64(MaxClientRTT/time.Millisecond) { // NaN fails both
		s.hub.ClientRTT(s.transport.Name(), time.Duration(ms*float64(time.Millisecond)))
	}
}

// pollKey names a poll client: its user, and the key its polls carry
// (SessionOptions.Client; "" counts the user's polls as one client).
type pollKey struct{ user, client string }

// pollClient is one poll client that has polled recently.
type pollClient struct {
	transport string    // the transport's name ("poll")
	open      int       // its polls open now
	until     time.Time // when it lapses if no poll is open
}

// pollClients counts poll clients, not poll requests. A poll session
// lives for one request; the client it belongs to is connected while one
// of its polls is open and for the session's PresenceTTL (twice the poll
// interval) after the last one ended, so that a client between two polls
// counts. A client that stops polling lapses then, and its disconnect is
// counted as normal (1000) when the hub next sweeps: at every scrape, at
// every admin status, and every second from the janitor.
type pollClients struct {
	hub *Hub // Static after construction.

	mu      sync.Mutex
	clients map[pollKey]*pollClient // Guarded by mu.
}

// ended is a poll client that has ended, to count outside pollClients.mu.
type ended struct {
	key       pollKey
	transport string
	d         Disconnect
}

// open counts a new poll of s's client, and the client as connected if
// it was not. Called with h.mu held.
func (p *pollClients) open(s *Session) {
	h := p.hub
	now := h.cfg.Now()
	key := pollKey{s.user, s.opts.Client}
	p.mu.Lock()
	c := p.clients[key]
	if c != nil && c.open == 0 && !c.until.After(now) {
		// It lapsed before this poll and no sweep has counted it yet.
		delete(p.clients, key)
		p.mu.Unlock()
		p.end(ended{key, c.transport, DisconnectNormal})
		p.mu.Lock()
		c = p.clients[key]
	}
	fresh := c == nil
	if fresh {
		if p.clients == nil {
			p.clients = make(map[pollKey]*pollClient)
		}
		c = &pollClient{transport: s.transport.Name()}
		p.clients[key] = c
	}
	c.open++
	p.mu.Unlock()
	if fresh {
		h.metrics.sessions.WithLabelValues(c.transport).Inc()
		h.metrics.connects.WithLabelValues(c.transport).Inc()
		if obs := h.cfg.Observer; obs != nil {
			obs.SessionOpened(s.user, c.transport)
		}
	}
}

// close ends one poll of s's client. A poll that ends normally (its
// answer is written, code 1000) leaves the client connected until
// PresenceTTL from now. Any other end (a shutdown, a tier move, a write
// failure) ends the client with that code unless another of its polls is
// still open: its next poll, if any, connects it again.
func (p *pollClients) close(s *Session, d Disconnect) {
	now := p.hub.cfg.Now()
	key := pollKey{s.user, s.opts.Client}
	p.mu.Lock()
	c := p.clients[key]
	if c == nil {
		p.mu.Unlock()
		return
	}
	c.open--
	if d.Code != protocol.CloseNormal && c.open <= 0 {
		delete(p.clients, key)
		p.mu.Unlock()
		p.end(ended{key, c.transport, d})
		return
	}
	if until := now.Add(s.opts.PresenceTTL); until.After(c.until) {
		c.until = until
	}
	p.mu.Unlock()
}

// sweep ends the poll clients that have lapsed by now.
func (p *pollClients) sweep(now time.Time) {
	var gone []ended
	p.mu.Lock()
	for key, c := range p.clients {
		if c.open == 0 && !c.until.After(now) {
			delete(p.clients, key)
			gone = append(gone, ended{key, c.transport, DisconnectNormal})
		}
	}
	p.mu.Unlock()
	for _, e := range gone {
		p.end(e)
	}
}

// end counts a poll client's disconnect. Called without p.mu.
func (p *pollClients) end(e ended) {
	p.hub.metrics.sessions.WithLabelValues(e.transport).Dec()
	p.hub.disconnected(e.key.user, e.transport, e.d)
}

// count returns the connected poll clients by transport name, after a
// sweep.
func (p *pollClients) count(now time.Time) map[string]int {
	p.sweep(now)
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]int, 1)
	for _, c := range p.clients {
		out[c.transport]++
	}
	return out
}

// sweepPolls ends the poll clients that have lapsed; the janitor calls it
// every second, and a scrape of chat_sessions before it reads the gauge.
func (h *Hub) sweepPolls() { h.counters.polls.sweep(h.cfg.Now()) }

// Connections returns the clients connected to this node per transport
// name: open sessions on streaming transports, and on poll the poll
// clients that have polled within twice their interval (see
// SessionOptions.PresenceTTL). It is what chat_sessions reports.
func (h *Hub) Connections() map[string]int {
	out := h.counters.polls.count(h.cfg.Now())
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.sessions {
		if s.opts.PresenceTTL <= 0 {
			out[s.transport.Name()]++
		}
	}
	return out
}
