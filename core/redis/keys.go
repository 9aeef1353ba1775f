package redis

import "strings"

// keys names everything the engine keeps in Redis. Every key of one room
// carries the room in a {hash tag}, and every key of one user the user, so
// that each script touches one Cluster slot. Static after construction.
type keys struct {
	prefix  string // the configured prefix, without a trailing colon
	control string // the control channel: <prefix>:control
	nodes   string // the node registry: <prefix>:nodes
}

func newKeys(prefix string) keys {
	return keys{prefix: prefix, control: prefix + ":control", nodes: prefix + ":nodes"}
}

// roomKeys are the keys and the channel of one room.
type roomKeys struct {
	meta    string // hash: head, first, epoch
	log     string // stream: one entry <seq>-0 per retained message
	ids     string // hash: message id -> seq, for the retained messages
	reads   string // hash: user -> read position
	cur     string // hash: seq -> an edited or deleted entry's state (edit.go)
	pres    string // hash: <node>\x00<user> -> display name, one field per node a user is online on
	presn   string // hash: user -> how many nodes the user is online on
	channel string // pub/sub channel: committed messages and ephemeral envelopes
}

// room returns the keys of room name.
func (k keys) room(name string) roomKeys {
	tag := k.channel(name)
	return roomKeys{meta: tag + ":meta", log: tag + ":log", ids: tag + ":ids", reads: tag + ":reads",
		cur: tag + ":cur", pres: tag + ":pres", presn: tag + ":presn", channel: tag}
}

// channel returns room's pub/sub channel alone, for the paths that need
// nothing else (every Broadcast): room builds eight strings.
func (k keys) channel(room string) string { return k.prefix + ":{" + room + "}" }

// roomOf returns the room whose channel is ch, and whether ch is a room
// channel of this prefix at all.
func (k keys) roomOf(ch string) (string, bool) {
	head := k.prefix + ":{"
	if len(ch) <= len(head)+1 || !strings.HasPrefix(ch, head) || ch[len(ch)-1] != '}' {
		return "", false
	}
	return ch[len(head) : len(ch)-1], true
}

// metaPattern is the SCAN pattern of every room's meta key, the prefix's
// glob characters escaped.
func (k keys) metaPattern() string { return globEscape(k.prefix) + ":{*}:meta" }

// globEscape escapes the characters that SCAN's MATCH reads as a pattern.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// roomOfMeta returns the room whose meta key is key.
func (k keys) roomOfMeta(key string) (string, bool) {
	name, ok := strings.CutSuffix(key, ":meta")
	if !ok {
		return "", false
	}
	return k.roomOf(name)
}

// node is the key of one node's status record.
func (k keys) node(id string) string { return k.prefix + ":node:" + id }

// nodeRooms is the set of rooms where node id may hold presence fields.
func (k keys) nodeRooms(id string) string { return k.node(id) + ":rooms" }

// nodeUsers is the set of users for whom node id may hold a connection
// count.
func (k keys) nodeUsers(id string) string { return k.node(id) + ":users" }

// reapLock is held by the node that cleans up after dead node id.
func (k keys) reapLock(id string) string { return k.prefix + ":reap:" + id }

// conns is the hash of user's open connections, by node.
func (k keys) conns(user string) string { return k.prefix + ":conns:{" + user + "}" }

// rate is user's send bucket (the GCRA's theoretical arrival time).
func (k keys) rate(user string) string { return k.prefix + ":rate:{" + user + "}" }

// user is the hash of user's names: name (chosen), seen (from a token).
func (k keys) user(user string) string { return k.prefix + ":user:{" + user + "}" }

// userRooms is the sorted set of user's room list, scored by when each
// room was added (Unix ms).
func (k keys) userRooms(user string) string { return k.user(user) + ":rooms" }

// kv is the key of a shared value (Get, Set).
func (k keys) kv(key string) string { return k.prefix + ":kv:" + key }

// list is the key of a shared capped log (LogPush, LogRange).
func (k keys) list(key string) string { return k.prefix + ":list:" + key }
