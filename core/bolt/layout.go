package bolt

import (
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// The file's layout; doc.go draws it.
var (
	bucketMeta  = []byte("meta")
	bucketRooms = []byte("rooms")
	bucketMsgs  = []byte("m") // in a room: seq -> record
	bucketIDs   = []byte("i") // in a room: message id -> seq
	bucketReads = []byte("r") // in a room: user -> seq
	keyHead     = []byte("head")
	keyVersion  = []byte("version")
)

// layoutVersion is stored under meta/version. Open refuses other values.
const layoutVersion = 1

// initLayout creates the top-level buckets of a new file and checks the
// layout version of an existing one.
func initLayout(db *bolt.DB) error {
	return db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		if _, err := tx.CreateBucketIfNotExists(bucketRooms); err != nil {
			return err
		}
		v := meta.Get(keyVersion)
		if v == nil {
			return meta.Put(keyVersion, u64(layoutVersion))
		}
		if len(v) != 8 || binary.BigEndian.Uint64(v) != layoutVersion {
			return fmt.Errorf("%w: unknown layout version %x", errCorrupt, v)
		}
		return nil
	})
}

// u64 encodes v as an 8-byte big-endian key or value, so that keys sort
// by number.
func u64(v uint64) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), v)
}

// getU64 decodes a value written by u64; a missing value is 0.
func getU64(b *bolt.Bucket, key []byte) uint64 {
	v := b.Get(key)
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

// room holds the buckets of one room within one transaction.
type room struct {
	name  string
	msgs  *bolt.Bucket
	ids   *bolt.Bucket
	reads *bolt.Bucket
	head  uint64   // latest seq
	first uint64   // oldest retained seq; head+1 when none is
	was   bounds   // head and first when the write transaction opened it
	w     *writeTx // the write transaction; nil in a read transaction
}

// viewRoom opens room name in a read transaction; nil if it does not exist.
func viewRoom(tx *bolt.Tx, name string) *room {
	b := tx.Bucket(bucketRooms).Bucket([]byte(name))
	if b == nil {
		return nil
	}
	r := &room{name: name, msgs: b.Bucket(bucketMsgs), ids: b.Bucket(bucketIDs),
		reads: b.Bucket(bucketReads), head: getU64(b, keyHead)}
	r.first = r.firstSeq()
	return r
}

// firstSeq finds the oldest retained seq. Retained seqs are always the
// contiguous range first..head: pruning only ever removes the oldest.
func (r *room) firstSeq() uint64 {
	k, _ := r.msgs.Cursor().First()
	if k == nil {
		return r.head + 1
	}
	return binary.BigEndian.Uint64(k)
}

// bounds returns r's head and first retained seq; a nil room's are an
// empty room's.
func (r *room) bounds() bounds {
	if r == nil {
		return emptyBounds
	}
	return bounds{head: r.head, first: r.first}
}
