package httpx

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"unicode/utf8"

	"github.com/chatd/chatd/core/protocol"
)

// statusOf is the one place wire codes become HTTP statuses.
var statusOf = map[protocol.Code]int{
	protocol.CodeBadRequest:         http.StatusBadRequest,
	protocol.CodeUnauthorized:       http.StatusUnauthorized,
	protocol.CodeTokenExpired:       http.StatusUnauthorized,
	protocol.CodeForbidden:          http.StatusForbidden,
	protocol.CodeNotFound:           http.StatusNotFound,
	protocol.CodeTooLarge:           http.StatusRequestEntityTooLarge,
	protocol.CodeRateLimited:        http.StatusTooManyRequests,
	protocol.CodeFeatureDisabled:    http.StatusConflict,
	protocol.CodeOverloaded:         http.StatusServiceUnavailable,
	protocol.CodeInternal:           http.StatusInternalServerError,
	protocol.CodeTooManyConnections: http.StatusTooManyRequests,
	protocol.CodeTooManyRooms:       http.StatusConflict,
	protocol.CodeUnavailable:        http.StatusServiceUnavailable,
	protocol.CodeTimeout:            http.StatusRequestTimeout,
	protocol.CodeConflict:           http.StatusConflict,
}

// Status returns the HTTP status for a wire code.
func Status(code protocol.Code) int {
	if s, ok := statusOf[code]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// retryAfter is the Retry-After value, in seconds, for a status that
// invites a retry, and "" for every other status.
func retryAfter(status int) string {
	switch status {
	case http.StatusTooManyRequests:
		return "1"
	case http.StatusServiceUnavailable:
		return "5"
	}
	return ""
}

// WriteError writes err as an error envelope with the matching status.
// Statuses that invite a retry carry Retry-After. It is the one place
// REST errors are written, so it tells the Reporter above w (see Report).
//
// An error without a wire code that comes of a cancelled context is the
// request's own: net/http cancels it when the client goes away (a send
// whose client gave up waiting for its ack on a node behind). It is
// answered StatusClientGone, with no body and not reported, as
// ClientGone's requests are: it was answered 500, internal, and a loaded
// node showed server errors it never made. A client that does read it
// (one that shut only its writing side) may retry. An error with a code
// keeps it, whatever its cause.
func WriteError(w http.ResponseWriter, err error) {
	var coded *protocol.Error
	if !errors.As(err, &coded) && errors.Is(err, context.Canceled) {
		w.WriteHeader(StatusClientGone)
		return
	}
	env := protocol.ErrorEnvelope(err, "")
	reportError(w, env.Code, err)
	status := Status(protocol.Code(env.Code))
	if s := retryAfter(status); s != "" {
		w.Header().Set("Retry-After", s)
	}
	WriteJSON(w, status, env)
}

// TransportOff is the error for an upgrade or stream on a transport the
// degradation level (or the user's flags) has turned off.
func TransportOff(name string) error {
	return protocol.Errorf(protocol.CodeOverloaded, "%s is off at this degradation level; negotiate again", name)
}

// WriteJSON writes v as a JSON body, as json.Encoder does (a newline
// after it), with its Content-Length: a kept-alive connection can then go
// to a lane (Lane.Keep). A v that does not encode leaves the body empty.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	b, err := json.Marshal(v)
	if err == nil {
		b = append(b, '\n')
		h.Set("Content-Length", strconv.Itoa(len(b)))
	}
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// MaxBody is the largest request body accepted, as for a WebSocket frame.
const MaxBody = 64 << 10

// DecodeJSON reads a JSON object of at most MaxBody bytes into v. A body
// over the limit is too_large; one that ran past its read deadline (see
// BodyLimits) is timeout, answered 408; anything else that fails is
// bad_request: bytes that are not UTF-8 (encoding/json would store them
// as U+FFFD, where a WebSocket frame's are refused), anything but white
// space after the object, a body that is not an object of v's shape.
//
// The limit is reported to the server's own writer, at the end of w's
// Unwrap chain, as http.MaxBytesReader expects: the server then closes the
// connection after the answer without resetting it under a client still
// sending (see closeUnread). The body is read to its end, so that the
// connection is left as it was found; a body that stops arriving is a
// timeout, wherever it stops.
func DecodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	b, err := io.ReadAll(http.MaxBytesReader(serverWriter(w), r.Body, MaxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			return protocol.Errorf(protocol.CodeTooLarge, "body larger than %d bytes", MaxBody)
		case IsTimeout(err):
			return &protocol.Error{Code: protocol.CodeTimeout, Message: "the request body did not arrive in time", Cause: err}
		}
		return &protocol.Error{Code: protocol.CodeBadRequest, Message: "the request body could not be read", Cause: err}
	}
	if !utf8.Valid(b) {
		return protocol.Errorf(protocol.CodeBadRequest, "body is not valid UTF-8")
	}
	if err := json.Unmarshal(b, v); err != nil { // trailing data included
		return &protocol.Error{Code: protocol.CodeBadRequest, Message: "body is not a JSON object of the expected shape", Cause: err}
	}
	return nil
}

// IsTimeout reports whether err is a read that ran past its deadline, as
// a request body read does once the body deadline has passed. Handlers
// that read a body themselves map it to protocol.CodeTimeout.
func IsTimeout(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
