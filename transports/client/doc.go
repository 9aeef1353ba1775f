// Package client is the Go client of chatd: one connection to a server
// over the best transport that works (WebSocket, then SSE, then long
// polling), moved between tiers without losing or duplicating a message.
//
// It may import core/protocol and gorilla/websocket only, never core,
// core/auth or another transport, so that outside programs can use it.
// Its SSE reader is its own (a small text/event-stream parser): the
// r3labs client leaks goroutines.
//
// # Use
//
//	c := client.New(client.Config{URL: "http://127.0.0.1:8080", Token: tokenFunc, Rooms: []string{"lobby"}})
//	go c.Run(ctx)              // connects, reconnects, moves tiers until ctx ends
//	for e := range c.Events() { ... }
//	ack, err := c.Send(ctx, "lobby", "hello")
//	_, err = c.Edit(ctx, "lobby", ack.Seq, "hello!")   // or Delete(ctx, "lobby", ack.Seq)
//
// State (or States) says at any time which tier is in use, whether it is
// connected, and why not.
//
// # The user's rooms and name
//
// Me and SetName read and set the user's display name; ListRooms returns
// the user's room list (joined rooms and DMs, with unread counts). With
// Config.UserEvents, Events also carries "room" envelopes (a room
// appeared in or left that list), each once, resumed across reconnects
// and tier moves under the position "~". Leave is an explicit leave on
// every tier: the room leaves the user's list too.
//
// # Positions, resume and deduplication
//
// The client keeps the last seq delivered per room: from the envelopes
// of the room's log (message, edit and delete: each has a seq of its
// own), and from joined.head when a room is joined live for the first
// time. Every connect resumes from those positions: WebSocket with
// rooms= and since= in the dial's URL (up to 64 rooms and 4 KiB; the
// rest, and rooms with no position, by join envelopes; and by envelopes
// only, from then on, if a server or proxy refuses the query), SSE and
// poll with since=room:seq,... (a poll that follows a poll passes back
// the server's cursor). Rooms with no position start live.
// Events drops any log entry whose seq is not above its room's position,
// so a resume that overlaps never shows one twice; Stats counts what it
// dropped.
//
// # Connect cycles and fallback
//
// Each cycle calls Token, negotiates (GET /v1/negotiate), and tries the
// offered tiers in the configured order. Every tier carries the token in
// an Authorization header, which chatd takes on every route: the client
// never asks for a ticket, which browsers need (they cannot set headers
// on WebSocket or EventSource) and which opens streams that live only as
// long as the ticket, write nothing and remember no join. A proxy that
// strips Authorization from stream requests leaves it unauthorized.
// After a live link ends for any reason but its
// credentials (4012, unauthorized) or a dead link, the next cycle first
// resumes on what it has: no Token, no negotiate, the best tier of the
// offer in hand (as the last control envelope left it). The server
// checks the offer at the dial; if it refuses for any reason but being
// busy, the cycle goes on with Token and negotiate. A busy or absent
// server keeps the next cycles resuming, so a restart costs it one
// request a WebSocket client. After three links in a row went live that
// way, the next cycle negotiates. A tier is connected when its first
// server envelope arrives (the WebSocket's first joined reply, the stream's first event,
// the first poll answer), within ConnectTimeout; a refused upgrade or a
// proxy that buffers the event stream makes the client fall to the next
// tier at once. A server that cannot take a connection now (refused or
// reset before any answer, or an unavailable or too_many_connections
// answer: restarting, draining, at a cap) ends the cycle instead: a lower
// tier would meet the same, and a restart must not strand clients on SSE.
// So does a process out of descriptors or socket buffers (EMFILE, ENFILE,
// ENOBUFS), as one that holds thousands of clients can be in a reconnect
// storm: no tier would dial either.
// When every tier fails, or the server is busy, the client waits a backoff with
// full jitter, rand[0, min(BackoffMax, BackoffBase·2^attempt)], and starts
// again. When a live connection ends, the next cycle starts from the top
// preference again, except when a move named a tier. Where it waits a
// backoff after a live connection (1000, 1001 without a hint, 1011 and
// other codes), the backoff's step is the number of such backoffs in a
// row since a connection last lived StableAfter (10s): a server that ends
// every link soon after it opens is retried at a growing interval, as a
// browser page is. Moves, 4001 and the codes that reconnect at once
// neither wait nor count; State.Attempt counts failed connects only.
//
// Close codes (WebSocket close frames, or the disconnect envelope on SSE):
// 1000 reconnects unless Run's context ended; 1001 reconnects after
// reconnect_ms; 4001 moves to the best tier of the last control
// envelope; 4003 ends Run with a *CloseError; 4008 and 4009 reconnect at
// once; 4012 gets a new token and reconnects; 4013 (a stream's ticket
// expired, which this client's never do) reconnects at once. A control
// envelope (streams
// are greeted with one, poll answers carry one) that no longer offers the
// current tier, or newly offers a better one, moves the client after a
// random delay up to MoveJitter; a better tier offered all along is no
// invitation, since the client is below it because it failed there.
// SwitchTransport moves it on demand, which is how tests force tier moves.
//
// A link silent for 3 heartbeat intervals (heartbeat_ms from negotiate)
// is dead: the client drops it and reconnects. Server pings on a
// WebSocket are answered with pong. A poll request times out after
// PollHold+ConnectTimeout. At level 3, or when empty answers come back at
// once, the client waits poll_interval_ms between polls; otherwise it
// polls again at once. With PollDeflate, polls ask for deflated answers
// (deflate=), each a chunk of one deflate stream going on from the answer
// before (transports/inflate); an answer that does not inflate to its
// length and checksum is dropped unread and polled again from the same
// cursor on a new stream, and a third in a row ends the link.
//
// # Goroutines
//
//   - Run's goroutine owns the connect loop. It creates one link at a time,
//     supervises it (connect timeout, dead-link watchdog, moves) and waits
//     for the link's reader to return before the next link starts, so only
//     one connection ever delivers envelopes.
//   - Each link has one reader goroutine: it dials (or polls) and decodes
//     server frames in order, applying positions and queueing events.
//   - One delivery goroutine, started by Run, hands queued events to the
//     Events channel, so a slow reader of Events never stalls the
//     connection or its heartbeats. It closes Events when Run returns.
//   - Callers' goroutines run Send, Edit, Delete, Read, Typing, Join and
//     Leave. WebSocket writes (theirs, the reader's pongs and joins) are
//     serialized by a mutex with a write deadline; HTTP calls carry their
//     own deadlines.
//
// Everything stops when Run's context ends; Run returns after its
// goroutines have.
package client
