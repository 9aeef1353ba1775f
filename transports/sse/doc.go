// Package sse is the Server-Sent Events transport: GET /v1/sse, built on
// r3labs/sse/v2 in the one setup known to be safe (see LIBRARIES.md in the
// shared folder): one server-named stream per connection, AutoReplay off,
// AutoStream on, every data event carrying our cursor as its id, and
// connections ended by an empty event or by cancelling their request,
// never by RemoveStream.
//
// The cursor comes from Last-Event-ID (browser reconnects) or ?cursor=,
// and is removed from the request before the library sees it: the library
// answers 400 to any Last-Event-ID that is not an integer.
//
// Heartbeats are both a comment (for proxies) and a ping data event (for
// client code, which cannot see comments). The first event and every ping
// carry a retry: hint.
//
// It imports core and transports/httpx only.
package sse
