package bolt

import (
	"context"
	"encoding/binary"

	bolt "go.etcd.io/bbolt"

	"github.com/chatd/chatd/core/protocol"
)

// Lookup returns the retained message with (room, id), if any.
func (s *Store) Lookup(ctx context.Context, room, id string) (protocol.Message, bool, error) {
	var (
		m     protocol.Message
		found bool
	)
	err := s.view(ctx, func(tx *bolt.Tx) error {
		r := viewRoom(tx, room)
		if r == nil {
			return nil
		}
		v := r.ids.Get([]byte(id))
		if v == nil {
			return nil
		}
		seq := binary.BigEndian.Uint64(v)
		raw := r.msgs.Get(u64(seq))
		if raw == nil {
			return nil
		}
		var err error
		m, err = decodeMessage(raw, room, seq)
		found = err == nil
		return err
	})
	return m, found, err
}
