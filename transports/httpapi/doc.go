// Package httpapi is the router: it wires the REST endpoints, the
// transports and the static pages onto one chi mux. Long-lived routes
// (WebSocket, SSE, poll) get no timeout or throttle middleware; the access
// log never records a query string, and logs rejected requests at debug
// with a periodic summary.
//
// Credentials: only the streaming routes take ?ticket= or ?token= (their
// query is bounded by httpx.MaxStreamQuery); every other route, the admin
// API included, needs Authorization: Bearer. Every answer carries
// X-Content-Type-Options: nosniff.
package httpapi
