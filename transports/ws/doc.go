// Package ws is the WebSocket transport (gorilla/websocket). It upgrades
// the request, hands client frames to a core.Session and writes the
// session's frames back.
//
// Writing. Each batch the session's writer hands over is written under one
// write deadline, as one WebSocket message: the envelope itself when the
// batch holds one, otherwise a JSON array of them, assembled in a pooled
// buffer so that it leaves as one frame in one system call. A message fanned
// out to many sessions is framed once for all of them, as a
// websocket.PreparedMessage kept in the frame's shared cache
// (core.Frame.Shared); a frame that only one session writes is written as
// it is.
//
// Heartbeats. The hub queues a ping frame every heartbeat; this transport
// sends it as a WebSocket ping control frame, which every WebSocket
// library answers with a pong by itself, so a client that follows the
// contract may stay quiet for as long as it likes. A client that cannot
// see control frames (a browser script, which needs the ping to detect a
// dead link) opens /v1/ws?heartbeat=app and gets {"type":"ping"}
// envelopes instead, which it answers with anything. Either way, a
// connection that sends nothing at all (no frame, no pong, no ping) for
// three heartbeats is closed with 4009.
//
// Compression. permessage-deflate is negotiated when the client offers it
// and Config.Compress allows it for the user; Compress is asked again
// before each batch, so a degradation level that turns it off relieves
// live connections too. A client whose offer allows context takeover (a
// browser's does) gets it: each data message is deflated against the
// connection's last 2 KiB and framed by the writer itself, and a
// broadcast's message once for all connections whose last 2 KiB are the
// same (takeover.go).
// Other clients get gorilla's mode, each message deflated alone: a
// shared frame is deflated once per broadcast, in memory; a batch is
// deflated per session, into the connection's pooled 16 KiB write buffer,
// or in memory first when it might not fit. Either way gorilla's pooled
// flate writers (1.2 MB each) are held only while deflating, never across
// a network write, so their number is the number of writers deflating at
// the same moment, not the number of connections or of slow clients.
//
// Memory. A 256-byte read buffer, pooled write buffers, and the HTTP
// handler returns once the reader is started: an idle connection holds
// its reader goroutine, on a 2 KiB stack (read.go), and no handler stack;
// the session's writer exits 250 ms after its last batch.
//
// User events. Each connection follows the user's own stream, the room
// "~" (protocol.UserRoom) of "room" envelopes, live from the start and
// quietly (no joined envelope). A client that resumes it sends
// {"type":"join","room":"~","since":N}, which restarts it from there.
//
// It imports core, transports/httpx and transports/internal/deflate only.
package ws
