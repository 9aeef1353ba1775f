// Package core is the hub: rooms, sessions, per-room sequence numbers,
// history, presence, read receipts, typing, idempotent sends, permissions
// and limits.
//
// It knows nothing of HTTP. Transports (transports/ws, sse, poll) hand it
// decoded envelopes through a Session and implement the small Transport
// interface to move encoded frames back to the wire. Engines implement
// Store and deliver committed messages to Hub.Publish in per-room seq
// order.
//
// Delivery works like this. A session that joins a room is registered with
// the room first and marked catching-up; it then reads what it missed from
// the store, page by page, and finally, under the room's lock, reads the
// tail and turns live. Because an engine publishes only after a message is
// durable, everything published before the switch is already in the store,
// and everything after it arrives live: no gap, no duplicate. A live
// subscriber that sees a gap in seq (possible with a lossy broker) falls
// back to catching up from the store.
//
// Edits and deletes (Hub.Edit, Hub.Delete; edit.go) are entries of a
// room's log like messages, with seqs of their own, so they ride the same
// path; the engine applies each to its message atomically with the
// append, and reads serve messages in their current state. Attachments
// are resolved at send time through Config.Files, and the files of
// deleted and pruned messages reach Config.OnDelete (files.go).
//
// Each user has a display name (names.go: chosen with SetName, else the
// token's), a room list (rooms.go: joins, explicit leaves, DMs) and a
// stream of "room" events (userstream.go), which the engine stores like a
// room's log under a name no client can use, so that every session of
// the user follows it as the room "~" with the same exact delivery as a
// room's messages, on every tier and node.
//
// Must not import net/http, chi or any transport.
package core
