// Package httpapi is the router: it wires the REST endpoints, the
// transports and the static pages onto one chi mux. Long-lived routes
// (WebSocket, SSE, poll) get no timeout or throttle middleware; the access
// log never records a query string.
package httpapi
