package bolt

import (
	"context"
	"encoding/binary"
	"errors"
	"slices"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/protocol"
)

// Since implements core.Store. A limit of 0 or less returns the bounds
// only. It reads a consistent snapshot and runs concurrently with the
// writer and other readers. When nothing is asked for beyond the bounds
// (a limit of 0, or after at or past the head) and the room's bounds are
// cached (bounds.go), it answers from memory.
func (s *Store) Since(ctx context.Context, name string, after uint64, limit int) (core.Page, error) {
	if b, ok := s.bounds.get(name); ok && (limit <= 0 || after >= b.head) {
		if err := s.ready(ctx); err != nil {
			return core.Page{}, err
		}
		return core.Page{Head: b.head, First: b.first}, nil
	}
	var p core.Page
	err := s.view(ctx, func(tx *bolt.Tx) error {
		r := viewRoom(tx, name)
		b := r.bounds()
		p.Head, p.First = b.head, b.first
		s.bounds.offer(name, b, tx.ID())
		if r == nil || limit <= 0 || after >= r.head {
			return nil
		}
		p.Messages = make([]protocol.Message, 0, min(uint64(limit), r.head-after))
		c := r.msgs.Cursor()
		for k, v := c.Seek(u64(after + 1)); k != nil && len(p.Messages) < limit; k, v = c.Next() {
			m, err := decodeMessage(v, name, binary.BigEndian.Uint64(k))
			if err != nil {
				return err
			}
			p.Messages = append(p.Messages, m)
		}
		return nil
	})
	return p, err
}

// Before implements core.Store: up to limit messages with seq < before,
// oldest first; before == 0 (or beyond the head) means from the head.
func (s *Store) Before(ctx context.Context, name string, before uint64, limit int) (core.Page, error) {
	var p core.Page
	err := s.view(ctx, func(tx *bolt.Tx) error {
		r := viewRoom(tx, name)
		b := r.bounds()
		p.Head, p.First = b.head, b.first
		if r == nil || limit <= 0 {
			return nil
		}
		c := r.msgs.Cursor()
		var k, v []byte
		if before == 0 {
			k, v = c.Last()
		} else if k, _ = c.Seek(u64(before)); k == nil {
			k, v = c.Last() // before is past the newest: from the head
		} else {
			k, v = c.Prev()
		}
		for ; k != nil && len(p.Messages) < limit; k, v = c.Prev() {
			m, err := decodeMessage(v, name, binary.BigEndian.Uint64(k))
			if err != nil {
				return err
			}
			p.Messages = append(p.Messages, m)
		}
		slices.Reverse(p.Messages)
		return nil
	})
	return p, err
}

// Reads implements core.Store.
func (s *Store) Reads(ctx context.Context, name string) (map[string]uint64, error) {
	reads := map[string]uint64{}
	err := s.view(ctx, func(tx *bolt.Tx) error {
		r := viewRoom(tx, name)
		if r == nil {
			return nil
		}
		return r.reads.ForEach(func(k, v []byte) error {
			if len(v) != 8 {
				return errCorrupt
			}
			reads[string(k)] = binary.BigEndian.Uint64(v)
			return nil
		})
	})
	return reads, err
}

// ready reports why a read must not run: ctx ended, or the store is
// closed (core.ErrClosed).
func (s *Store) ready(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.closed.Load() {
		return core.ErrClosed
	}
	return nil
}

// view runs fn in a read transaction, mapping a closed store to
// core.ErrClosed.
func (s *Store) view(ctx context.Context, fn func(*bolt.Tx) error) error {
	if err := s.ready(ctx); err != nil {
		return err
	}
	err := s.db.View(fn)
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return core.ErrClosed
	}
	return err
}
