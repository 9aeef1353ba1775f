package protocol

import (
	"errors"
	"fmt"
)

// Code is a wire error code. The set is closed: add codes, never reuse one
// for a new meaning.
type Code string

// Error codes, as named by the contract plus the ones this server adds.
const (
	CodeBadRequest         Code = "bad_request"
	CodeUnauthorized       Code = "unauthorized"
	CodeTokenExpired       Code = "token_expired"
	CodeForbidden          Code = "forbidden"
	CodeNotFound           Code = "not_found"
	CodeTooLarge           Code = "too_large"
	CodeRateLimited        Code = "rate_limited"
	CodeFeatureDisabled    Code = "feature_disabled"
	CodeOverloaded         Code = "overloaded"
	CodeInternal           Code = "internal"
	CodeTooManyConnections Code = "too_many_connections"
	CodeTooManyRooms       Code = "too_many_rooms"
	CodeUnavailable        Code = "unavailable"
	CodeTimeout            Code = "timeout"  // a request body did not arrive within the body deadline
	CodeConflict           Code = "conflict" // the request does not fit the resource's state (admin API)
)

// Error is an error that carries a wire code. Message is safe to show the
// client; Cause, if any, is for the log only.
type Error struct {
	Code    Code
	Message string
	Cause   error
}

func (e *Error) Error() string {
	if e.Cause != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Cause)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Cause }

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// CodeOf returns the wire code of err and the message to show the client.
// An error that carries no code is internal and its text is not shown.
func CodeOf(err error) (Code, string) {
	var e *Error
	if errors.As(err, &e) {
		return e.Code, e.Message
	}
	return CodeInternal, "internal error"
}

// ErrorEnvelope returns the error envelope for err, answering ref.
func ErrorEnvelope(err error, ref string) Envelope {
	code, msg := CodeOf(err)
	return Envelope{Type: TypeError, Code: string(code), Message: msg, Ref: ref}
}

// WebSocket close codes. 1000 and 1001 are the RFC's; the 4000 range is ours.
const (
	CloseNormal           = 1000
	CloseGoingAway        = 1001 // server going away: reconnect after reconnect_ms
	CloseTooLarge         = 1009 // frame over the size limit
	CloseInternal         = 1011
	CloseSwitchTransport  = 4001 // read the last control envelope, move tier
	CloseForbidden        = 4003 // do not reconnect
	CloseSlow             = 4008 // queue overflow: reconnect and resume
	CloseHeartbeatTimeout = 4009 // no frame for 3 heartbeat intervals
	CloseTokenExpired     = 4012 // refresh the token, then reconnect
	CloseTicketExpired    = 4013 // the stream's ticket expired: reconnect at once with a new one
	CloseBadRequest       = 4000 // protocol violation; fix the client
)
