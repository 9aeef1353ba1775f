package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/chatd/chatd/core/protocol"
)

// Errors the client returns on its own.
var (
	// ErrRunning is returned by a second call to Run.
	ErrRunning = errors.New("client: Run was already called")
	// errLinkClosed means the connection a request went out on ended
	// before the reply came; the request is retried elsewhere.
	errLinkClosed = errors.New("client: connection closed before the reply")
	// errConnectTimeout means a tier did not deliver its first envelope
	// within ConnectTimeout (a refused or buffering path).
	errConnectTimeout = errors.New("client: no envelope within the connect timeout")
	// errDeadLink means three heartbeat intervals passed without a frame.
	errDeadLink = errors.New("client: dead link: no frame for 3 heartbeat intervals")
)

// ServerError is a failure the server reported: an HTTP error status with
// its error envelope, or an error envelope on a WebSocket.
type ServerError struct {
	Status     int           // HTTP status; 0 when it came over a WebSocket
	Code       protocol.Code // the envelope's code; empty when the body was not an envelope
	Message    string
	RetryAfter time.Duration // from Retry-After; 0 when absent
}

func (e *ServerError) Error() string {
	var b strings.Builder
	b.WriteString("client: server said ")
	if e.Status != 0 {
		fmt.Fprintf(&b, "%d ", e.Status)
	}
	if e.Code != "" {
		fmt.Fprintf(&b, "%s: ", e.Code)
	}
	b.WriteString(e.Message)
	return b.String()
}

// CloseError says that the server ended a connection with a close code, by
// a WebSocket close frame or a disconnect envelope. Run returns one for
// 4003 (forbidden).
type CloseError struct {
	Code      int
	Reason    string
	Reconnect time.Duration // the server's reconnect hint; 0 when absent
}

func (e *CloseError) Error() string {
	return fmt.Sprintf("client: connection closed with %d (%s)", e.Code, e.Reason)
}

// RefusedError is a WebSocket upgrade that got an HTTP answer other than
// 101, from the server or from a proxy on the way.
type RefusedError struct {
	Status int
	Err    error // the server's error envelope as a *ServerError, or the dial error
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("client: websocket upgrade refused with %d: %v", e.Status, e.Err)
}

func (e *RefusedError) Unwrap() error { return e.Err }

// serverError reads an HTTP error answer. The body is the error envelope
// when it comes from chatd; a proxy's answer keeps only its status.
func serverError(resp *http.Response) *ServerError {
	se := &ServerError{Status: resp.StatusCode, Message: http.StatusText(resp.StatusCode)}
	if s := resp.Header.Get("Retry-After"); s != "" {
		if n, err := strconv.Atoi(strings.TrimSpace(s)); err == nil && n >= 0 {
			se.RetryAfter = time.Duration(n) * time.Second
		}
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	var env protocol.Envelope
	if json.Unmarshal(body, &env) == nil && env.Type == protocol.TypeError && env.Code != "" {
		se.Code, se.Message = protocol.Code(env.Code), env.Message
	}
	return se
}

// envelopeError turns an error envelope into a ServerError.
func envelopeError(e protocol.Envelope) *ServerError {
	return &ServerError{Code: protocol.Code(e.Code), Message: e.Message}
}

// codeOf returns the wire code err carries, if any.
func codeOf(err error) protocol.Code {
	var se *ServerError
	if errors.As(err, &se) {
		return se.Code
	}
	return ""
}

// isUnauthorized reports whether err says the credentials were refused,
// which a new token may fix.
func isUnauthorized(err error) bool {
	var se *ServerError
	if !errors.As(err, &se) {
		return false
	}
	return se.Code == protocol.CodeUnauthorized || se.Code == protocol.CodeTokenExpired ||
		(se.Code == "" && se.Status == http.StatusUnauthorized)
}

// isForbidden reports whether err is chatd's own forbidden answer (not a
// proxy's 403), which no retry can fix.
func isForbidden(err error) bool {
	return codeOf(err) == protocol.CodeForbidden
}

// retryable reports whether a request that failed with err may succeed if
// made again, and how long the server asked to wait (0: the caller's
// backoff).
func retryable(err error) (bool, time.Duration) {
	var se *ServerError
	if !errors.As(err, &se) {
		return true, 0 // network errors, lost connections, timeouts
	}
	switch se.Code {
	case protocol.CodeRateLimited:
		if se.RetryAfter == 0 {
			return true, time.Second
		}
		return true, se.RetryAfter
	case protocol.CodeOverloaded, protocol.CodeUnavailable, protocol.CodeInternal, protocol.CodeTooManyConnections:
		return true, se.RetryAfter
	case "":
		// 499: the server took the request's client for gone (it shut
		// its writing side); the answer says nothing of the request.
		if se.Status >= 500 || se.Status == http.StatusTooManyRequests || se.Status == http.StatusRequestTimeout || se.Status == 499 {
			return true, se.RetryAfter
		}
	}
	return false, 0
}

// reconnectHint reads "...; reconnect_ms=N" from a close reason.
func reconnectHint(reason string) time.Duration {
	_, v, ok := strings.Cut(reason, "reconnect_ms=")
	if !ok {
		return 0
	}
	if i := strings.IndexFunc(v, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		v = v[:i]
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0
	}
	return time.Duration(n) * time.Millisecond
}

// busy reports whether err says a connection cannot be had now, whatever
// the tier: the connection was refused or reset before any answer (the
// server is down or restarting), chatd answered unavailable or
// too_many_connections (draining, or at a connection cap), or this
// process is out of descriptors or socket buffers (in a reconnect storm,
// a process holding many clients runs out before the server answers).
func busy(err error) bool {
	for _, errno := range []syscall.Errno{syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS} {
		if errors.Is(err, errno) {
			return true
		}
	}
	switch codeOf(err) {
	case protocol.CodeUnavailable, protocol.CodeTooManyConnections:
		return true
	}
	return false
}
