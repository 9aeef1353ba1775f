package httpx

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

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
}

// Status returns the HTTP status for a wire code.
func Status(code protocol.Code) int {
	if s, ok := statusOf[code]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// WriteError writes err as an error envelope with the matching status.
// Statuses that invite a retry carry Retry-After.
func WriteError(w http.ResponseWriter, err error) {
	env := protocol.ErrorEnvelope(err, "")
	status := Status(protocol.Code(env.Code))
	switch status {
	case http.StatusTooManyRequests:
		w.Header().Set("Retry-After", "1")
	case http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", strconv.Itoa(5))
	}
	WriteJSON(w, status, env)
}

// TransportOff is the error for an upgrade or stream on a transport the
// degradation level (or the user's flags) has turned off.
func TransportOff(name string) error {
	return protocol.Errorf(protocol.CodeOverloaded, "%s is off at this degradation level; negotiate again", name)
}

// WriteJSON writes v as a JSON body.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// MaxBody is the largest request body accepted, as for a WebSocket frame.
const MaxBody = 64 << 10

// DecodeJSON reads a JSON object of at most MaxBody bytes into v.
func DecodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	body := http.MaxBytesReader(w, r.Body, MaxBody)
	dec := json.NewDecoder(body)
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return protocol.Errorf(protocol.CodeTooLarge, "body larger than %d bytes", MaxBody)
		}
		return &protocol.Error{Code: protocol.CodeBadRequest, Message: "body is not a JSON object of the expected shape", Cause: err}
	}
	return nil
}
