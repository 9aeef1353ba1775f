// Package poll is the HTTP long-polling transport: GET /v1/poll.
//
// Every request is self-contained. The cursor names the position in each
// room; the answer carries the next cursor, which covers exactly the
// events in the answer: anything queued but not answered comes with the
// next poll. Any node can serve the next poll.
//
// A poll's events come from a core session. The first poll of a client
// (since=, or no cursor) opens one, joins its rooms and answers at once.
// Once answered, the session of a poll that resumed from a cursor is kept
// for the client's next poll, for up to Config.Keep (keep.go): a poll
// that resumes from exactly the cursor of that answer, for the same
// identity and rooms, carries on with it, so a client that polls in step
// pays no session, no joins and no store reads per answer, and gets what
// arrived between two polls at once. Any other poll (an older cursor
// after a lost answer, since=, another node) opens a session of its own
// and joins the rooms from its cursor (quietly, so an exact resume adds
// no joined envelope), as every poll did before. The keeper is a cache:
// a session's frames go on from exactly where its last answer's cursor
// ends, and a poll takes it only with that cursor, so what a client gets
// never depends on whether its poll found one.
//
// A held poll is as light as a session can be: it waits in the request's
// own goroutine, with no buffer (frames are collected in a pooled slice,
// and the answer is built in a pooled buffer of its exact size once it is
// due) and one timer kept with the session. After Config.Park with no
// news it parks: the handler takes the connection over from net/http and
// returns, and the session answers when news comes or the hold ends.
//
// Answers are batched. The session's writer hands over everything queued
// at once, and a poll that gets news less than Config.Linger after it
// opened stays open for the rest of it, so a busy room costs one poll per
// Linger per client rather than one per message. While the node is
// behind, a Pacer (pace.go) spaces each kept session's answers further,
// by up to a second, as the scheduler's latency says: clients that
// re-poll as soon as they are answered would otherwise keep a node at
// its core on answers alone.
//
// Once a kept session's poll is answered, its HTTP/1.1 connection goes
// to Config.Lane (an httpx.Lane), which serves the client's next polls
// on it without net/http's per-request machinery and gives anything
// else on the connection back to net/http. So does a parked poll's,
// once its answer is written (park.go).
//
// A token or ticket is verified once and taken on trust until its
// expiry (httpx.Authenticator's cache), and the control envelope every
// answer carries comes encoded (Config.ControlWire, once per distinct
// offer in degrade.Policy): both cost more than the rest of a poll on a
// kept session.
//
// With Config.Compress, an answer of at least Config.CompressMin bytes is
// gzipped for a client that accepts gzip. Each answer is compressed on
// its own: answers differ (cursor, run of events) even within a
// broadcast, so there is nothing to share between clients.
//
// A poll client counts as online in its rooms while it has polled within
// twice the poll interval (a presence lease in core); a kept session
// keeps it online while it is kept.
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
