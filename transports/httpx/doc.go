// Package httpx holds what every HTTP-facing transport shares: the one
// table that maps wire error codes to HTTP statuses, JSON bodies with a
// size limit, request authentication (bearer header, ticket, token query),
// origin checks, an access log that never records a query string, and
// the middleware that reports error answers and client round trips.
//
// It imports core/protocol and core/auth, never a transport.
package httpx
