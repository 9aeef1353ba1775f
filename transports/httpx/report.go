package httpx

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/chatd/chatd/core/protocol"
)

// Reporter is told what the HTTP layer answers and what clients report
// of themselves; *core.Hub is one.
type Reporter interface {
	// RequestError counts an error answered with code to user ("" when
	// the request proved no identity).
	RequestError(user, code string)
	// ClientRTT records a round trip a client on transport reported; it
	// ignores values out of its bounds.
	ClientRTT(transport string, rtt time.Duration) bool
}

// CauseLogger is what a Reporter may also be: it logs the cause of an
// error answered internal, which the answer does not show.
type CauseLogger interface {
	InternalError(user string, err error)
}

// The headers a client reports with.
const (
	// HeaderRTT carries a round trip the client measured, as
	// "<tier>=<milliseconds>" ("sse=84"): the tier the client is on
	// (websocket, sse or poll) and the time from a send to its ack, or
	// from a ping to its pong. Any request may carry it, once per
	// measurement; an SSE or poll client puts it on its next request.
	HeaderRTT = "X-Chat-RTT"
	// HeaderClient carries the key a poll client sends with every poll,
	// 1 to 64 letters, digits, '-', '_' or '.', so that the server counts
	// the user's poll clients apart (a tab each), not their requests.
	HeaderClient = "X-Chat-Client"
)

// The keys the handlers look headers up by, in net/http's canonical form:
// http.Header.Get turns any other spelling into it, allocating a string
// on every call (two or three allocations of each poll's 48, for
// "Last-Event-ID" and HeaderRTT).
const (
	lastEventID = "Last-Event-Id" // Server-Sent Events' Last-Event-ID
	rttKey      = "X-Chat-Rtt"    // HeaderRTT
)

// rttTiers are the tiers a reported round trip may name: a client's
// header becomes a metric label only from this set.
var rttTiers = map[string]bool{"websocket": true, "sse": true, "poll": true}

// maxRTTHeader bounds the HeaderRTT value read: "websocket=60000.000".
const maxRTTHeader = 32

// ParseRTT reads a HeaderRTT value. It reports false for anything but a
// known tier, '=', and a number of milliseconds; the bounds on the value
// are the Reporter's.
func ParseRTT(v string) (tier string, rtt time.Duration, ok bool) {
	if len(v) > maxRTTHeader {
		return "", 0, false
	}
	tier, ms, found := strings.Cut(strings.TrimSpace(v), "=")
	if !found || !rttTiers[tier] {
		return "", 0, false
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(ms), 64)
	if err != nil || !(f > 0) || f > float64(time.Hour/time.Millisecond) { // !(f > 0) also refuses NaN
		return "", 0, false
	}
	return tier, time.Duration(f * float64(time.Millisecond)), true
}

// maxClientKey bounds a HeaderClient value.
const maxClientKey = 64

// ClientKey returns the request's HeaderClient key, or "" when it has
// none or it is not 1 to 64 letters, digits, '-', '_' or '.'.
func ClientKey(r *http.Request) string {
	k := r.Header.Get(HeaderClient)
	if len(k) == 0 || len(k) > maxClientKey {
		return ""
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return ""
		}
	}
	return k
}

// Report returns middleware that tells rep of every error that
// WriteError answers beneath it, with the user the request proved (by
// Require, Identify or IdentifyStream) or "" before that, and of the
// round trip a request reports in HeaderRTT. Use it outermost, so that
// every error answer is beneath it.
func Report(rep Reporter) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if v := r.Header.Get(rttKey); v != "" {
				if tier, rtt, ok := ParseRTT(v); ok {
					rep.ClientRTT(tier, rtt)
				}
			}
			rw := &reportWriter{ResponseWriter: w, rep: rep}
			if lc, ok := r.Context().Value(laneKey{}).(*laneConn); ok {
				// A lane's request context is its own already: the writer
				// goes on the connection, at no new context and request
				// copy (a ninth of what a poll answered on a lane allocated).
				lc.report = rw
				next.ServeHTTP(rw, r)
				return
			}
			next.ServeHTTP(rw, r.WithContext(context.WithValue(r.Context(), reportKey{}, rw)))
		})
	}
}

type reportKey struct{}

// reportWriter is the ResponseWriter Report hands down: WriteError finds
// it through the Unwrap chain and reports through it. It keeps Flush,
// Hijack and Unwrap, so that streams and WebSocket upgrades pass through.
type reportWriter struct {
	http.ResponseWriter
	rep  Reporter               // Static after construction.
	user atomic.Pointer[string] // the identity the request proved, once it has
}

// ReportUser records the user r proved, for the errors answered after:
// for a handler that identifies a request without the Authenticator (a
// cache of its answers).
func ReportUser(r *http.Request, user string) { reportUser(r, user) }

// reportUser records the user r proved, for the errors answered after.
// A lane's request is looked for first: its key is a few contexts from
// the top, where a search for the other walks them all.
func reportUser(r *http.Request, user string) {
	if lc, ok := r.Context().Value(laneKey{}).(*laneConn); ok {
		if lc.report != nil {
			// A connection's requests are one client's, nearly always one
			// user's: the string it reports is made once, not a request
			// (a poll's, with the collection it brought on, was 3% of the
			// node under a broadcast to 5,000 poll clients).
			p := lc.user
			if p == nil || *p != user {
				u := user
				p = &u
				lc.user = p
			}
			lc.report.user.Store(p)
		}
	} else if rw, ok := r.Context().Value(reportKey{}).(*reportWriter); ok {
		u := user
		rw.user.Store(&u)
	}
}

// reportError tells the Reporter above w, if any, of an error answer
// (err, answered with code), and a CauseLogger of an internal one's cause.
func reportError(w http.ResponseWriter, code string, err error) {
	for w != nil {
		if rw, ok := w.(*reportWriter); ok {
			user := ""
			if u := rw.user.Load(); u != nil {
				user = *u
			}
			rw.rep.RequestError(user, code)
			if cl, ok := rw.rep.(CauseLogger); ok && code == string(protocol.CodeInternal) {
				cl.InternalError(user, err)
			}
			return
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return
		}
		w = u.Unwrap()
	}
}

func (w *reportWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Hijack goes through the writers beneath to the server's (their Unwrap
// chain), not only the one beneath: one of them may keep Unwrap and not
// Hijack.
func (w *reportWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

func (w *reportWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
