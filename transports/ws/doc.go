// Package ws is the WebSocket transport (gorilla/websocket). It upgrades
// the request, hands client frames to a core.Session and writes the
// session's frames back, several envelopes per frame as a JSON array when
// they are queued together.
//
// Memory is tuned from the start: a 1 KiB read buffer, pooled write
// buffers, no compression, and the HTTP handler returns once the reader is
// started, so an idle connection holds two goroutines and no handler
// stack. Liveness: the core session pings every heartbeat; a connection
// that sends nothing (no frame, no pong) for three heartbeats is closed
// with 4009.
//
// It imports core and transports/httpx only.
package ws
