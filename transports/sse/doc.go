// Package sse is the Server-Sent Events transport: GET /v1/sse.
//
// The stream is written here, not by a library. Each batch the session's
// writer hands over becomes one buffer (the "data:" lines of a fanned-out
// frame are built once for all its sessions with core.Frame.Shared; the
// "id:" line is each session's own), one write and one flush, under a
// write deadline; a batch the client does not take within the write
// timeout closes the stream as slow (4008).
//
// An HTTP/1 stream takes its connection over once net/http has sent the
// response head (without chunking, so the body ends when the connection
// closes, as the SSE specification recommends): the request's goroutine
// and net/http's buffers go, and an idle stream costs one goroutine of
// its own that reads the connection to learn when the client leaves, much
// as a WebSocket does. Where the connection cannot be taken over (HTTP/2)
// the stream is written through the ResponseWriter while the request's
// goroutine waits. See wire.go.
//
// r3labs/sse/v2 served this tier before. Its server formats each field
// with fmt.Fprintf and flushes per event, takes events from a channel
// that our writer could only fill by polling (TryPublish, with sleeps of
// 1 to 50 ms), and runs three goroutines per stream besides the request's:
// an idle stream cost 55 KiB against 18 KiB for a WebSocket, and a
// broadcast's p99 was 14× WebSocket's. Written here, an idle stream costs
// about 11 KiB.
//
// Every event carries our cursor as its id (never empty), so a browser's
// Last-Event-ID resumes the stream exactly; the cursor comes from
// Last-Event-ID or ?cursor= (see httpx.ParseSubscription). The first
// event and every heartbeat carry a retry: hint. Heartbeats are both a
// comment (for proxies) and a ping data event (for client code, which
// cannot see comments). A stream ends with its disconnect event, then
// the response ends in order; the connection is not reused.
//
// With Config.Compress, a client that accepts gzip gets a gzipped stream,
// flushed per batch. Batches are deflated one at a time against the last
// 2 KiB of the stream, by a pooled compressor lent for the batch, so a
// busy compressed stream holds 2 KiB and an idle one nothing (see
// gzipStream).
//
// User events. Every stream also follows the user's own stream, the room
// "~" (protocol.UserRoom) of "room" envelopes: its position is the "~"
// entry of the cursor, so event ids cover it and a reconnect resumes it
// exactly; a stream without one opens with a joined envelope for "~".
// rooms= may be left out for a stream of user events only (user.go).
//
// It imports core, core/auth, core/protocol, transports/httpx and
// klauspost/compress only.
package sse
