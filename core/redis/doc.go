// Package redis is the engine for several nodes: a core.Engine whose
// history, seqs, idempotency keys and read positions live in one Redis
// that the nodes share, and whose broker carries committed messages,
// ephemeral events and control events between them over Redis pub/sub.
// It also keeps what the nodes share besides rooms: a key/value space, a
// few capped lists and the registry of live nodes (Get, Set, LogPush,
// LogRange, Nodes). It imports core and core/protocol, never a transport.
//
// # Layout
//
//	<prefix>:{<room>}:meta    hash: head (latest seq), first (oldest retained),
//	                          epoch (random, set when the room is created)
//	<prefix>:{<room>}:log     stream: one entry <seq>-0 per retained message,
//	                          field m the record (codec.go)
//	<prefix>:{<room>}:ids     hash: message id -> seq, for the retained messages
//	<prefix>:{<room>}:reads   hash: user -> read position
//	<prefix>:{<room>}         channel: the room's messages and ephemeral events
//	<prefix>:control          channel: control events, to every node
//	<prefix>:nodes            sorted set: node id, scored by its lease's end (Unix ms)
//	<prefix>:node:<id>        string: the node's status (JSON), expiring with the lease
//	<prefix>:kv:<key>         string: Get, Set
//	<prefix>:list:<key>       list: LogPush, LogRange, newest first
//
// A room's keys share the hash tag {<room>}, so they sit in one Redis
// Cluster slot and one script may touch them all. The engine talks to one
// server (goredis.Client) today; on a Cluster the scripts need no change
// and the room channels would move to SPUBLISH/SSUBSCRIBE.
//
// # History in a stream
//
// A room's history is a stream whose entry ids are the seqs themselves
// (<seq>-0), not a sorted set scored by seq. Since and Before are then
// XRANGE and XREVRANGE on the seq, pruning the oldest is XTRIM MINID, and
// Redis itself refuses an entry at or below the stream's last id, a last
// guard against a reused seq. A stream packs consecutive entries into
// listpacks and stores field names once per pack, so a message costs its
// record plus a few bytes, where a sorted set costs a skiplist node and a
// dict entry (about 100 bytes) per member, and its members would have to
// be made unique. The record is JSON (one-letter names) so that the
// scripts can read an id or a stamp with cjson when they prune.
//
// # Why go-redis
//
// github.com/redis/go-redis/v9 is Redis's own Go client: pipelines and
// MULTI, Lua scripts run by EVALSHA with an EVAL fallback, a PubSub with a
// plain Receive loop that lets the engine own its reconnects, Unix
// sockets, and a Cluster client with the same API for later. The engine
// turns off what would act behind its back: retries (MaxRetries -1: the
// breaker and the callers decide), dial retries, the identity handshake
// and maintenance notifications; every command is bounded by
// Config.Timeout (context, read and write deadlines, a 1 s dial timeout),
// and the pub/sub connection never redials by itself (see noDial).
//
// # Append
//
// One script, atomically: if the id is in the room's ids hash it returns
// the stored message, dup; otherwise it takes head+1, stores the record
// (stamped by Config.Now on the caller's side, so tests control the
// clock), records id -> seq, prunes the oldest beyond MaxMessages (with
// their ids, moving first) and PUBLISHes the message on the room's
// channel. Publishing from the script puts each room's publications in
// seq order, after the message is stored. Retention by age is a sweep
// (SCAN of the rooms' meta keys, a script per room) every SweepInterval.
// The idempotency window is the retention window, as in core/bolt.
//
// # Broker
//
// The node has one pub/sub connection. A room's channel carries committed
// messages and ephemeral envelopes, each payload led by a kind byte; the
// control channel carries control events. Four goroutines serve it:
//
//   - the reader receives, pings the link when it is quiet, and replaces
//     the connection when it fails or stops answering (with backoff);
//   - the dispatcher decodes and hands to the core.Handler in arrival
//     order: messages batched through Publish, ephemerals through Deliver,
//     controls through Control;
//   - the publisher sends Broadcast and Announce from a bounded queue in
//     pipelines (a full queue or a failed send drops and counts: ephemeral
//     events are at most once), and applies subscription changes;
//   - the heartbeat renews the node's lease (and, with MaxAge, a fifth,
//     the sweeper).
//
// Subscribe never blocks: when the link is up and free it writes the
// SUBSCRIBE itself, on the open connection, under a 20 ms deadline and
// never dialling, so that the subscription is on the wire before it
// returns (anything published after that reaches this node); otherwise the
// publisher subscribes. Unsubscribe only marks the room: it is dropped
// after idleGrace unless wanted again, which absorbs join/leave churn.
//
// An Append first makes sure the node is subscribed to the room and that
// the subscription is in force (waiting up to Timeout the first time), so
// that the message comes back through pub/sub, in order with everyone
// else's. That is how a node's own appends reach its handler even in a
// room the hub did not subscribe to; such a room is dropped after
// idleGrace without appends.
//
// # Exactly once across outages
//
// The dispatcher remembers, per subscribed room, the last seq it
// delivered, and never delivers a seq at or below it. When the link comes
// back (Redis restarted, network) the reader subscribes everything again
// and, once a ping sent after the subscriptions is answered, queues a
// resync: the dispatcher waits until Redis answers commands, reads each
// room from its last delivered seq (Since) and hands that to Publish, and
// only then takes what arrived live after the reconnect; then it calls
// the OnReconnect callbacks. A room where nothing was delivered yet is
// not read: the hub catches up from the store when the next message shows
// a gap.
//
// # No seq is given out twice
//
// If Redis lost data (no persistence, FLUSHALL, an older AOF), a room's
// head can be behind what a node delivered. A node passes the last seq it
// delivered in the room to every Append it makes there, and the resync
// compares it with the stored head: in either case a head below it is
// raised to it, what is left of the room's history is dropped (so that
// the retained range stays contiguous and older resumes answer
// recovered:false), and the engine logs an error naming the room and both
// figures. A resume beyond the head answers recovered:false
// (core.Page.Recovered). A node that had delivered nothing in the room
// cannot tell; a changed epoch at the next resync is logged.
//
// # Durability
//
// An ack means durable only if Redis appends every write to its AOF and
// fsyncs it before answering. Open reads CONFIG GET appendonly and
// appendfsync and refuses anything but yes and always, or a server that
// refuses CONFIG, with ErrNotDurable and how to fix it, unless
// Config.AcceptRisk, when it logs a loud warning.
//
// # Outages
//
// Every call is bounded by Config.Timeout. A circuit breaker
// (sony/gobreaker) sits in front of Redis: after 3 consecutive failures
// calls fail at once without dialling, and after 1 s one probe goes
// through. A call that cannot reach Redis returns a *protocol.Error with
// CodeUnavailable ("engine unavailable: <op>"); one whose context ended
// returns ctx.Err(); one after Close, core.ErrClosed. Health reports the
// breaker, the last failure and the pub/sub link. Everything recovers by
// itself when Redis returns.
//
// # Nodes
//
// Each node heartbeats every Lease/3: its score in <prefix>:nodes is its
// lease's end by Redis's clock (TIME), so nodes' clocks need not agree,
// and its status record expires with the lease. Nodes lists those whose
// lease has not ended; Close removes the node. A dead node's entry stays
// in the sorted set, past its lease, for an hour (forgetAfter): whoever
// cleans up after dead nodes finds them there.
//
// # Metrics
//
// chat_redis_errors_total{op}, chat_redis_resyncs_total,
// chat_redis_dropped_total{reason} and chat_redis_breaker_state (0 closed,
// 1 half-open, 2 open).
package redis
