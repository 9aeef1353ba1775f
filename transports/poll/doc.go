// Package poll is the HTTP long-polling transport: GET /v1/poll.
//
// Every request is self-contained. The cursor names the position in each
// room; the handler opens a short-lived core session, joins the rooms from
// those positions (quietly, so an exact resume adds no joined envelope),
// and answers as soon as anything is queued, or after the hold time with
// an empty batch. The answer carries the next cursor, which covers exactly
// the events in the answer: anything queued but not answered comes with
// the next poll. No state survives between requests, so any node can serve
// the next poll.
//
// A held poll is as light as a session can be: it waits in the request's
// own goroutine, with no writer goroutine (nothing is flushed until news
// arrives) and no buffer (frames are collected in a pooled slice, and the
// answer is built in a pooled buffer of its exact size once it is due).
//
// Answers are batched. The session's writer hands over everything queued
// at once, and a poll that gets news less than Config.Linger after it
// opened stays open for the rest of it, so a busy room costs one poll per
// Linger per client rather than one per message.
//
// With Config.Compress, an answer of at least Config.CompressMin bytes is
// gzipped for a client that accepts gzip. Each answer is compressed on
// its own: answers differ (cursor, run of events) even within a
// broadcast, so there is nothing to share between clients.
//
// A poll client counts as online in its rooms while it has polled within
// twice the poll interval (a presence lease in core).
//
// User events. Every poll also follows the user's own stream, the room
// "~" (protocol.UserRoom) of "room" envelopes, from the "~" entry of its
// cursor, so an event that happened between two polls comes with the
// next one, once; a poll without one answers at once with a joined
// envelope for "~". rooms= may be left out to poll for user events only
// (user.go).
//
// It imports core, core/auth, core/protocol, transports/httpx and
// klauspost/compress only.
package poll
