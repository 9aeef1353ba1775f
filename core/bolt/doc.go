// Package bolt is the embedded, durable core.Store: the engine a single
// node runs with no other service. It owns one bbolt file under the data
// directory and everything in it: rooms' messages, their seq counters,
// the idempotency keys of sends, read positions, and per user the
// display names and room list (core.UserStore). It imports core and
// core/protocol only. It is a whole core.Engine: its broker is a
// core.LocalBroker that hands each commit to the hub that core.New
// registered.
//
// # Why bbolt
//
// go.etcd.io/bbolt is pure Go (no cgo), keeps everything in a single file,
// and serves reads from an mmap concurrently with its one writer, which is
// exactly the shape of a chat history: one stream of appends, many
// readers. Measured on this project's machine type with 200-byte messages
// acknowledged only once durable, bbolt with group commit reached about
// 40k msgs/s against about 36k for modernc sqlite (WAL, synchronous=FULL),
// and about 2.5k with one message per transaction. BenchmarkAppendParallel
// measures it here; the figure depends on the disk's fsync latency and on
// how many appenders wait on each commit.
//
// # Layout
//
//	meta/version            layout version (1)
//	rooms/<room>/head       the room's latest seq, 8 bytes big-endian
//	rooms/<room>/m/<seq>    the message record (codec.go); seq big-endian,
//	                        so keys sort by seq. A plain message is a
//	                        version 1 record; attachments, edits, deletes
//	                        and a message's edit state need version 2
//	                        (edit.go)
//	rooms/<room>/i/<id>     idempotency: client message id -> seq
//	rooms/<room>/r/<user>   read position: user -> seq
//	users/<user>/name       the display name the user chose (users.go)
//	users/<user>/seen       the name claim of the user's token, last seen
//	users/<user>/rooms/<r>  the user's room list: room -> when added (Unix ms)
//
// A user's stream of "room" events (core.UserStream, "~<user>") is a room
// like any other here, pruned to core.UserStreamRetain events
// (core.Retain). Name and list writes go through the group commit like
// appends.
//
// A room's retained messages are always the contiguous range First..Head:
// pruning removes only the oldest, so First is the first key of m/ and a
// seq is never reused.
//
// # Group commit
//
// Append and SetReads do not write: they queue a request for the single
// writer goroutine and wait (SetReads one request for all its
// positions). The writer takes one request, drains whatever else is
// queued without blocking (up to Config.MaxBatch), applies them all
// in one bbolt Update transaction, which fsyncs on commit, and only then
// answers each caller. So an ack means durable, and one fsync is shared by
// every request that queued while the previous commit ran. After
// answering, it hands that commit's new messages to the registered hub, in
// per-room seq order: publish after store. A failed transaction answers
// every request in its batch with the error. bbolt's own db.Batch is not
// used: it retries functions and gives no single place to publish from.
// Reads (Since, Before, Reads) use read transactions directly.
//
// # Retention
//
// An append that takes a room past Config.MaxMessages prunes its oldest
// messages in the same transaction. With Config.MaxAge set, the writer
// sweeps every room on a timer (Config.SweepInterval) and prunes messages
// older than MaxAge by Config.Now; Store.Sweep runs it on demand. Between
// sweeps, expired messages may still be read.
//
// # Edits and deletes
//
// An edit or a delete is appended like a message, with its own seq, in
// the same transaction that rewrites its target's record in place: an
// edit sets the text and the edit stamp and adds its own seq to the
// target's list of edits (at most protocol.MaxEdits); a delete clears
// the target's text and files, sets its deleted flag, and rewrites each
// of its edits without text. Reads then need nothing more than the
// records: what is stored is the current state. The checks (a retained
// message, not deleted) read the same transaction, so two requests in
// one batch see each other. A refused request is answered with its
// *protocol.Error and writes nothing; the rest of the batch commits.
//
// The files a delete removes, and those of pruned messages that still
// have some (decoding only version 2 records: a plain one has none), are
// handed to the registered handler (core.FileReleaser) after the
// commit, after its messages are published.
//
// # Idempotency window
//
// Pruning a message deletes its idempotency key in the same transaction.
// The idempotency window is therefore the retention window: re-sending
// an id whose message was pruned stores it again, with a new seq.
//
// # Shutdown
//
// Close stops admitting writes (they return core.ErrClosed), commits what
// is already queued, waits for the writer and closes the file.
package bolt
