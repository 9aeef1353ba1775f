package redis

import "strings"

// keys names everything the engine keeps in Redis. Every key of one room
// carries the room in a {hash tag}, so all of them live in one Cluster
// slot and one script may touch them together. Static after construction.
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
	channel string // pub/sub channel: committed messages and ephemeral envelopes
}

// room returns the keys of room name.
func (k keys) room(name string) roomKeys {
	tag := k.prefix + ":{" + name + "}"
	return roomKeys{meta: tag + ":meta", log: tag + ":log", ids: tag + ":ids", reads: tag + ":reads", channel: tag}
}

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
func (k keys) metaPattern() string {
	var b strings.Builder
	for _, r := range k.prefix {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String() + ":{*}:meta"
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

// kv is the key of a shared value (Get, Set).
func (k keys) kv(key string) string { return k.prefix + ":kv:" + key }

// list is the key of a shared capped log (LogPush, LogRange).
func (k keys) list(key string) string { return k.prefix + ":list:" + key }
