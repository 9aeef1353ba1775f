// Package poll is the HTTP long-polling transport: GET /v1/poll.
//
// Every request is self-contained. The cursor names the position in each
// room; the handler opens a short-lived core session, joins the rooms from
// those positions (quietly, so an exact resume adds no joined envelope),
// and answers as soon as anything is queued, or after the hold time with
// an empty batch. The answer carries the next cursor. No state survives
// between requests, so any node can serve the next poll.
//
// A poll client counts as online in its rooms while it has polled within
// twice the poll interval (a presence lease in core).
//
// It imports core and transports/httpx only.
package poll
