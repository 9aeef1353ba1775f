package bolt

import (
	"encoding/binary"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/protocol"
)

// appendFill is the split fill of a room's message bucket. Its keys only
// ever grow, so pages can be packed full rather than split in half.
const appendFill = 0.95

// writeTx applies one batch of requests inside one bbolt write
// transaction. It caches each room it touches, so a batch of N appends to
// one room reads the head once and writes it once.
type writeTx struct {
	tx     *bolt.Tx
	rooms  *bolt.Bucket
	cfg    Config
	now    int64 // Unix ms: one clock reading stamps the whole batch
	cache  map[string]*room
	dirty  map[string]bool // rooms whose head changed
	stored []protocol.Message
	// released are the files of the messages this transaction deleted
	// or pruned, by room, to report once it has committed.
	released map[string][]protocol.File
}

func newWriteTx(tx *bolt.Tx, cfg Config) (*writeTx, error) {
	rooms := tx.Bucket(bucketRooms)
	if rooms == nil {
		return nil, fmt.Errorf("%w: no rooms bucket", errCorrupt)
	}
	return &writeTx{tx: tx, rooms: rooms, cfg: cfg, now: cfg.Now().UnixMilli(),
		cache: map[string]*room{}, dirty: map[string]bool{}}, nil
}

// do applies one request. An error fails the whole transaction.
func (w *writeTx) do(r *request) (result, error) {
	switch r.kind {
	case opAppend:
		m, dup, err := w.append(r.msg)
		if pe := (*protocol.Error)(nil); errors.As(err, &pe) {
			return result{err: err}, nil // an edit or delete refused before any write
		}
		return result{msg: m, dup: dup}, err
	case opSetReads:
		for i, rp := range r.reads {
			seq, err := w.setRead(rp.Room, rp.User, rp.Seq)
			if err != nil {
				return result{}, err
			}
			r.reads[i].Seq = seq
		}
		return result{}, nil
	case opSweep:
		return result{}, w.sweep()
	case opName, opList, opUnlist:
		return w.user(r.kind, r.user)
	}
	return result{}, fmt.Errorf("unknown request kind %d", r.kind)
}

// room opens, creating if needed, the buckets of room name.
func (w *writeTx) room(name string) (*room, error) {
	if r, ok := w.cache[name]; ok {
		return r, nil
	}
	b, err := w.rooms.CreateBucketIfNotExists([]byte(name))
	if err != nil {
		return nil, fmt.Errorf("room %q: %w", name, err)
	}
	r := &room{name: name, head: getU64(b, keyHead), w: w}
	for _, sub := range []struct {
		dst  **bolt.Bucket
		name []byte
	}{{&r.msgs, bucketMsgs}, {&r.ids, bucketIDs}, {&r.reads, bucketReads}} {
		if *sub.dst, err = b.CreateBucketIfNotExists(sub.name); err != nil {
			return nil, fmt.Errorf("room %q: %w", name, err)
		}
	}
	r.msgs.FillPercent = appendFill
	r.first = r.firstSeq()
	r.was = r.bounds()
	w.cache[name] = r
	return r, nil
}

// append stores m unless its id is already stored in its room, then
// prunes the room down to MaxMessages.
func (w *writeTx) append(m protocol.Message) (protocol.Message, bool, error) {
	r, err := w.room(m.Room)
	if err != nil {
		return m, false, err
	}
	if v := r.ids.Get([]byte(m.ID)); v != nil {
		seq := binary.BigEndian.Uint64(v)
		raw := r.msgs.Get(u64(seq))
		if raw == nil {
			return m, false, fmt.Errorf("%w: id %q points at missing seq %d", errCorrupt, m.ID, seq)
		}
		stored, err := decodeMessage(raw, m.Room, seq)
		return stored, true, err
	}
	var (
		target protocol.Message
		edits  []uint64
	)
	if !m.IsMessage() {
		if target, edits, err = r.target(m); err != nil {
			return m, false, err
		}
	}
	r.head++
	m.Seq, m.TS = r.head, w.now
	w.dirty[r.name] = true
	if err := r.msgs.Put(u64(m.Seq), encodeMessage(make([]byte, 0, recordSize(m)), m)); err != nil {
		return m, false, err
	}
	if err := r.ids.Put([]byte(m.ID), u64(m.Seq)); err != nil {
		return m, false, err
	}
	if !m.IsMessage() {
		files, err := r.amend(target, edits, m)
		if err != nil {
			return m, false, err
		}
		w.release(r.name, files)
	}
	w.stored = append(w.stored, m)
	return m, false, w.pruneCount(r)
}

// pruneCount removes the oldest messages of r beyond MaxMessages.
func (w *writeTx) pruneCount(r *room) error {
	max := core.Retain(r.name, w.cfg.MaxMessages)
	if max < 0 {
		return nil
	}
	for r.head-r.first+1 > uint64(max) {
		if err := r.pruneFirst(); err != nil {
			return err
		}
	}
	return nil
}

// pruneFirst removes r's oldest message and its idempotency entry: the
// idempotency window is the retention window. The files of a pruned
// message that still has some are released.
func (r *room) pruneFirst() error {
	k := u64(r.first)
	if raw := r.msgs.Get(k); raw != nil {
		id, err := decodeID(raw, r.name, r.first)
		if err != nil {
			return err
		}
		files, err := decodeFiles(raw, r.name, r.first)
		if err != nil {
			return err
		}
		r.w.release(r.name, files)
		if err := r.ids.Delete(id); err != nil {
			return err
		}
		if err := r.msgs.Delete(k); err != nil {
			return err
		}
	}
	r.first++
	return nil
}

// setRead raises user's position in room to seq and returns the result.
func (w *writeTx) setRead(name, user string, seq uint64) (uint64, error) {
	r, err := w.room(name)
	if err != nil {
		return 0, err
	}
	if cur := getU64(r.reads, []byte(user)); cur >= seq {
		return cur, nil
	}
	return seq, r.reads.Put([]byte(user), u64(seq))
}

// sweep prunes, in every room, the messages older than MaxAge. Records
// are in seq order and stamped by a clock that is assumed not to go back,
// so each room stops at its first message young enough to keep.
func (w *writeTx) sweep() error {
	if w.cfg.MaxAge <= 0 {
		return nil
	}
	cutoff := w.now - w.cfg.MaxAge.Milliseconds()
	var names []string
	err := w.rooms.ForEachBucket(func(k []byte) error {
		names = append(names, string(k))
		return nil
	})
	if err != nil {
		return err
	}
	for _, name := range names {
		if err := w.sweepRoom(name, cutoff); err != nil {
			return err
		}
	}
	return nil
}

func (w *writeTx) sweepRoom(name string, cutoff int64) error {
	r, err := w.room(name)
	if err != nil {
		return err
	}
	for r.first <= r.head {
		ts, err := decodeTS(r.msgs.Get(u64(r.first)), name, r.first)
		if err != nil || ts >= cutoff {
			return err
		}
		if err := r.pruneFirst(); err != nil {
			return err
		}
	}
	return nil
}

// moved returns the rooms whose bounds the transaction changed (appends,
// prunes by count or age), or nil.
func (w *writeTx) moved() map[string]*room {
	var m map[string]*room
	for name, r := range w.cache {
		if r.bounds() != r.was {
			if m == nil {
				m = make(map[string]*room)
			}
			m[name] = r
		}
	}
	return m
}

// finish writes the heads of the rooms that changed.
func (w *writeTx) finish() error {
	for name := range w.dirty {
		r := w.cache[name]
		b := w.rooms.Bucket([]byte(name))
		if err := b.Put(keyHead, u64(r.head)); err != nil {
			return fmt.Errorf("room %q: %w", name, err)
		}
	}
	return nil
}
