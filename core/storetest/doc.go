// Package storetest is the conformance suite that every core.Store engine
// must pass: the embedded bbolt engine (core/bolt) today, the Redis engine
// later. An engine's test calls Run with a Factory:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T, o storetest.Options) storetest.Engine {
//			s, err := bolt.Open(bolt.Config{Path: filepath.Join(o.Dir, "chat.db"),
//				MaxMessages: o.MaxMessages, MaxAge: o.MaxAge, Now: o.Now})
//			if err != nil {
//				t.Fatal(err)
//			}
//			return storetest.Engine{Store: s, Sweep: s.Sweep}
//		})
//	}
//
// The suite fixes what core.Store leaves implicit:
//
//   - Seqs are 1, 2, 3… per room with no gaps, also under concurrency, and
//     are never reused after pruning.
//   - Append stamps TS (Unix ms) from Options.Now and ignores the caller's
//     Seq and TS. A duplicate (room, id) returns the first message as
//     stored, with dup set, within the retention window.
//   - Since with limit <= 0 returns the bounds only. Before with before == 0
//     or beyond the head pages back from the head. An empty or unknown
//     room has Head 0 and First 1. Retained seqs are the contiguous range
//     First..Head.
//   - The handler registered with the engine (its Broker half) gets every
//     new message once, after Since can see it, in per-room seq order, and
//     never a duplicate.
//   - After Close every method returns an error wrapping core.ErrClosed;
//     Close is idempotent and keeps every acknowledged message.
//   - An Append whose context ends returns ctx.Err(); the message may or
//     may not be stored, and re-sending the same id tells which.
//   - An edit or a delete (Message.Kind) is stored with its own seq, after
//     the dedupe, only if its target is a retained message that is not
//     deleted (else not_found) and is a message at all, with fewer than
//     protocol.MaxEdits edits (else bad_request); a refusal stores and
//     publishes nothing. Since, Before and Lookup then serve the target
//     with the edit's text and Edited = the edit's TS, or, once deleted,
//     redacted (Message.Redacted), and every edit of a deleted message
//     redacted too, across a reopen. What is published is the entry as
//     stored.
//   - Files round-trip. The files of a deleted message, and of messages
//     pruned by count or by age that still have some, are reported once to
//     the registered handler's ReleaseFiles (core.FileReleaser).
//   - The UserStore half keeps chosen and seen names apart, lists rooms
//     newest first up to core.MaxListedRooms, reports whether each add or
//     remove changed the list, and gives each room's bounds, newest
//     message and read position (users.go). A user's stream
//     (core.UserStream) keeps core.UserStreamRetain messages.
//
// The suite does not test whether a pruned message's id is still
// deduplicated: that window is engine policy and each engine documents it.
//
// It never sleeps to synchronise: it waits on publications, using a
// generous timeout only as a failure deadline. It imports core and
// core/protocol only, never an engine.
package storetest
