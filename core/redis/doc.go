// Package redis is the engine for several nodes: a core.Engine whose
// history, seqs, idempotency keys and read positions live in one Redis
// that the nodes share, and whose broker carries committed messages,
// ephemeral events and control events between them over Redis pub/sub.
// It is a core.Cluster too: presence, the per-user connection cap and the
// send limit hold across the nodes. It also keeps what the nodes share
// besides rooms: a key/value space, a few capped lists and the registry of
// live nodes (Get, Set, LogPush, LogRange, Nodes). It imports core and
// core/protocol, never a transport.
//
// # Layout
//
//	<prefix>:{<room>}:meta    hash: head (latest seq), first (oldest retained),
//	                          epoch (random, set when the room is created)
//	<prefix>:{<room>}:log     stream: one entry <seq>-0 per retained message,
//	                          field m the record (codec.go)
//	<prefix>:{<room>}:ids     hash: message id -> seq, for the retained messages
//	<prefix>:{<room>}:cur     hash: seq -> state of an edited or deleted entry (edit.go)
//	<prefix>:{<room>}:reads   hash: user -> read position
//	<prefix>:{<room>}:pres    hash: <node>\x00<user> -> display name, per node the user is online on
//	<prefix>:{<room>}:presn   hash: user -> how many nodes the user is online on
//	<prefix>:{<room>}         channel: the room's messages and ephemeral events
//	<prefix>:control          channel: control events, to every node
//	<prefix>:nodes            sorted set: node id, scored by its lease's end (Unix ms)
//	<prefix>:node:<id>        string: the node's status (JSON), expiring with the lease
//	<prefix>:node:<id>:rooms  set: rooms where the node may hold presence fields
//	<prefix>:node:<id>:users  set: users the node may hold a connection count for
//	<prefix>:reap:<id>        string: lock of the node cleaning up after dead node id
//	<prefix>:conns:{<user>}   hash: node -> the user's connections open on it
//	<prefix>:rate:{<user>}    string: the user's send bucket (GCRA arrival time, µs)
//	<prefix>:user:{<user>}    hash: name (the display name the user chose), seen (their token's)
//	<prefix>:user:{<user>}:rooms  sorted set: the user's room list, scored by when added (Unix ms)
//	<prefix>:kv:<key>         string: Get, Set
//	<prefix>:list:<key>       list: LogPush, LogRange, newest first
//
// A room's keys share the hash tag {<room>}, and a user's the tag
// {<user>}, so each group sits in one Redis Cluster slot and one script
// may touch it all; no script touches two slots (a node's own sets are
// written beside the scripts, in the same pipeline). The engine talks to one
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
// A user's stream of "room" events (core.UserStream, "~<user>") is a room
// like any other: its appends, publication and resync are the room's, and
// it keeps core.UserStreamRetain entries (core.Retain).
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
// their ids, moving first; at most 256 per append, so that lowering
// MaxMessages does not make one append hold Redis) and PUBLISHes the
// message on the room's channel. Publishing from the script puts each
// room's publications in seq order, after the message is stored.
// Retention by age is a sweep every SweepInterval: SCAN of the rooms' meta
// keys, then per room a script that prunes up to 512 messages with one
// XTRIM MINID (no per-entry tombstones), repeated while there is more.
// The idempotency window is the retention window, as in core/bolt.
//
// An edit or a delete goes through the same script, with its own seq:
// after the dedupe it checks its target (retained, a message, not
// deleted, fewer than protocol.MaxEdits edits) and refuses with a code
// and nothing appended, else it appends and writes the target's state
// (and, for a delete, each of its edits') to the room's cur hash, since a
// stream entry cannot change; every read applies that state in the
// script that reads (readScript, lookupScript, a duplicate's answer).
// Pruning an entry removes its state. The records of a deleted message
// with files, and of pruned messages that still had some, come back in
// the script's answer, and the node that ran it reports their files to
// its handler (core.FileReleaser), once.
//
// # Broker
//
// The node has one pub/sub connection. A room's channel carries committed
// messages and ephemeral envelopes, each payload led by a kind byte; the
// control channel carries control events. Five goroutines serve it:
//
//   - the reader blocks in Receive, with no read deadline (one firing in
//     the middle of a reply would leave the stream unreadable), and
//     replaces the connection when a read fails, with backoff, dialling
//     without holding the link's lock;
//   - the watchdog pings the link every Lease/3, and a new connection at
//     once, and closes one whose ping is not answered within Timeout (not
//     while the reader waits for the dispatcher: that is backpressure), so
//     that the reader's read fails;
//   - the dispatcher decodes and hands to the core.Handler in arrival
//     order: messages batched through Publish, ephemerals through Deliver,
//     controls through Control;
//   - the publisher sends Broadcast and Announce from a bounded queue in
//     pipelines (a full queue or a failed send drops and counts: ephemeral
//     events are at most once), and applies subscription changes;
//   - the heartbeat renews the node's lease (and, with MaxAge, a sixth,
//     the sweeper; the cluster's keeper and flusher are below).
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
// room the hub did not subscribe to (the hub's Send needs no join, and
// core.Store publishes every new message to the node's handler, which
// storetest checks); such a room is dropped after idleGrace without
// appends. Publishing straight from Append would save the subscription
// but could not keep the room's seq order against other nodes' appends;
// the cost is one SUBSCRIBE per room a node appends to, held idleGrace.
//
// # Exactly once across outages
//
// The dispatcher remembers, per subscribed room, the last seq it
// delivered, and never delivers a seq at or below it. When a room's
// subscription is confirmed it also reads the room's head, its base: from
// then on every later message either arrives live or is read by a
// resync, so a quiet room where nothing was delivered yet is covered too.
//
// When the link is lost the reader tells the dispatcher at once. It then
// subscribes everything again on a new connection and, once a ping sent
// after the subscriptions is answered, queues a resync: the dispatcher
// waits until Redis answers commands, reads each room from its last
// delivered seq (or its base) with Since and hands that to Publish, then
// calls the OnReconnect callbacks. Between the loss and the resync, a live
// message in a room with a known position is not delivered (the resync
// reads it from the store): delivering it would move the position past
// the messages the outage hid. A room subscribed on the new link takes
// its messages live, and the resync reads its base.
//
// One gap is left: if the link is lost in the moment between a room's
// subscription coming into force and its head being read, with messages
// appended in that moment and none delivered in the room yet, the base is
// above them and they are not delivered; the hub sees the gap at the
// room's next message and catches up from the store.
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
// in the sorted set, past its lease, until a live node has cleaned up
// after it (below), however long that takes: one pruned unreaped would
// leave its presence and connection counts behind for good.
//
// # Cluster
//
// Presence: each node applies its own net changes in a room with one
// script (presenceScript), which adds or removes the node's field per user
// and counts per user the nodes they are online on; it returns the
// changes across the cluster (first node online, last node offline) and
// the room's online count, and the hub broadcasts those. Members lists the
// users with a field from a node not known to be dead, once each, named
// by this node's field if it has one, else by the node whose id sorts
// first. A node keeps its own presence as the truth: a room whose write
// failed is settled (the node's fields rewritten from it, the changes
// published) by the keeper once Redis answers.
//
// Connection cap: <prefix>:conns:{<user>} counts the user's connections
// per node. AcquireConn's script sums every node's count except those of
// nodes known to be dead (their lease had ended at this node's last
// heartbeat), so a node newer than that heartbeat counts, and a dead
// node's connections stop counting a heartbeat after its lease ends, even
// before it is cleaned up after; it takes one if the sum is below the
// limit. ReleaseConn does not block: the node's own counts are the truth,
// and the flusher sends releases in batches (pipelined scripts, the field
// deleted at 0); a user whose write failed has their field rewritten from
// the node's count.
//
// Send limit: a GCRA per user on Redis's clock (TIME in the script), its
// key expiring when the bucket is full again.
//
// Dead nodes: every Lease/2 each node's keeper looks for nodes whose lease
// has ended (once its own heartbeats have succeeded for a lease and a
// second: after an outage every lease looks ended until the nodes renew,
// and their breakers may hold them back a second), takes a lock (SET NX PX) per dead node so that one node does
// it, checks the lease is still over, then, room by room from the dead
// node's rooms set, removes its presence fields (HSCAN MATCH on its id)
// and publishes the users that went offline (one presence envelope each,
// or past 100 one with the room's count); then it removes its connection
// counts (from its users set), its registration and its keys. A dead
// node's users go offline within about Lease × 1.5. Close does the same
// for its own node at once. A node that finds its own entry expired or
// gone at a heartbeat (cleaned up after while alive, or Redis lost data)
// writes its presence and connection counts again. A node restarted under
// the same id first cleans up what its earlier life left.
//
// A node's rooms and users sets must never miss a member it has state
// under (it would stay behind forever when the node dies); see index.go
// for how removing members no longer needed stays safe against writes.
//
// # Metrics
//
// chat_redis_errors_total{op}, chat_redis_resyncs_total,
// chat_redis_dropped_total{reason}, chat_redis_breaker_state (0 closed,
// 1 half-open, 2 open), chat_redis_reaped_nodes_total and
// chat_redis_reaped_presence_total.
package redis
