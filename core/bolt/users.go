package bolt

import (
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"slices"

	bolt "go.etcd.io/bbolt"

	"github.com/chatd/chatd/core"
)

// What the store keeps per user (core.UserStore), beside the rooms:
//
//	users/<user>/name          the name the user chose
//	users/<user>/seen          the name claim of the user's token, last seen
//	users/<user>/rooms/<room>  the user's room list: room -> when added, Unix ms, 8 bytes
//
// The users bucket is made by the first write that needs it, so files
// written before it existed open unchanged (layout version 1).
var (
	bucketUsers    = []byte("users")
	bucketUserList = []byte("rooms")
	keyName        = []byte("name")
	keySeen        = []byte("seen")
)

// userReq is what a user write carries to the writer.
type userReq struct {
	user, room, name string
	chosen           bool
}

var _ core.UserStore = (*Store)(nil)

// UserNames implements core.UserStore.
func (s *Store) UserNames(ctx context.Context, users []string) (map[string]core.UserNames, error) {
	out := make(map[string]core.UserNames, len(users))
	err := s.view(ctx, func(tx *bolt.Tx) error {
		for _, u := range users {
			b := userBucket(tx, u)
			if b == nil {
				continue
			}
			out[u] = core.UserNames{Chosen: string(b.Get(keyName)), Seen: string(b.Get(keySeen))}
		}
		return nil
	})
	return out, err
}

// SetUserName implements core.UserStore.
func (s *Store) SetUserName(ctx context.Context, user, name string, chosen bool) error {
	if err := validKeys(user, name); err != nil {
		return err
	}
	_, err := s.do(ctx, &request{kind: opName, user: userReq{user: user, name: name, chosen: chosen}})
	return err
}

// AddUserRoom implements core.UserStore. The stamp is the commit's clock
// reading; of entries stamped alike, the one whose name sorts last counts
// as the newest.
func (s *Store) AddUserRoom(ctx context.Context, user, room string) (bool, error) {
	return s.listOp(ctx, opList, user, room)
}

// RemoveUserRoom implements core.UserStore.
func (s *Store) RemoveUserRoom(ctx context.Context, user, room string) (bool, error) {
	return s.listOp(ctx, opUnlist, user, room)
}

// listOp adds or removes a room. It reads first: a join of a room
// already listed, or a leave of one that is not, is the common case (a
// client reconnecting, a poll joining its rooms) and costs no commit.
func (s *Store) listOp(ctx context.Context, kind opKind, user, room string) (bool, error) {
	if err := validKeys(user, room); err != nil {
		return false, err
	}
	var listed bool
	err := s.view(ctx, func(tx *bolt.Tx) error {
		if ub := userBucket(tx, user); ub != nil {
			if b := ub.Bucket(bucketUserList); b != nil {
				listed = b.Get([]byte(room)) != nil
			}
		}
		return nil
	})
	if err != nil || listed == (kind == opList) {
		return false, err
	}
	res, err := s.do(ctx, &request{kind: kind, user: userReq{user: user, room: room}})
	return res.hit, err
}

var _ core.UserLister = (*Store)(nil)

// EachUser implements core.UserLister, in one read transaction, in the
// order of the users' ids.
func (s *Store) EachUser(ctx context.Context, fn func(user string, names core.UserNames, rooms [][]byte) bool) error {
	return s.view(ctx, func(tx *bolt.Tx) error {
		users := tx.Bucket(bucketUsers)
		if users == nil {
			return nil
		}
		var rooms [][]byte
		c := users.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if v != nil {
				continue // only buckets are users
			}
			ub := users.Bucket(k)
			un := core.UserNames{Chosen: string(ub.Get(keyName)), Seen: string(ub.Get(keySeen))}
			rooms = rooms[:0]
			if b := ub.Bucket(bucketUserList); b != nil {
				err := b.ForEach(func(room, v []byte) error {
					if len(v) != 8 {
						return fmt.Errorf("%w: room list entry %q", errCorrupt, room)
					}
					rooms = append(rooms, room)
					return nil
				})
				if err != nil {
					// Left to be read as it comes, where the error
					// shows; the other users are listed.
					s.cfg.Logger.Warn("users: a room list is corrupt", "user", string(k), "err", err)
					continue
				}
			}
			if !fn(string(k), un, rooms) {
				return nil
			}
		}
		return nil
	})
}

// listed is one entry of a user's room list.
type listed struct {
	room  string
	stamp uint64
}

// newestFirst orders a room list: the latest stamp first, then by name,
// descending (the order of a Redis sorted set read backwards).
func newestFirst(a, b listed) int {
	if c := cmp.Compare(b.stamp, a.stamp); c != 0 {
		return c
	}
	return cmp.Compare(b.room, a.room)
}

// UserRooms implements core.UserStore.
func (s *Store) UserRooms(ctx context.Context, user string) ([]string, error) {
	var list []listed
	err := s.view(ctx, func(tx *bolt.Tx) error {
		var err error
		list, err = readList(userBucket(tx, user))
		return err
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(list, newestFirst)
	out := make([]string, 0, min(len(list), core.MaxListedRooms))
	for _, e := range list[:min(len(list), core.MaxListedRooms)] {
		out = append(out, e.room)
	}
	return out, nil
}

// readList reads a user's room list from their bucket (nil: none).
func readList(ub *bolt.Bucket) ([]listed, error) {
	if ub == nil {
		return nil, nil
	}
	b := ub.Bucket(bucketUserList)
	if b == nil {
		return nil, nil
	}
	var list []listed
	err := b.ForEach(func(k, v []byte) error {
		if len(v) != 8 {
			return fmt.Errorf("%w: room list entry %q", errCorrupt, k)
		}
		list = append(list, listed{room: string(k), stamp: binary.BigEndian.Uint64(v)})
		return nil
	})
	return list, err
}

// RoomStates implements core.UserStore, from one read transaction.
func (s *Store) RoomStates(ctx context.Context, user string, rooms []string) ([]core.RoomState, error) {
	out := make([]core.RoomState, 0, len(rooms))
	err := s.view(ctx, func(tx *bolt.Tx) error {
		for _, name := range rooms {
			st := core.RoomState{Room: name}
			r := viewRoom(tx, name)
			b := r.bounds()
			st.Head, st.First = b.head, b.first
			if r != nil {
				st.Read = getU64(r.reads, []byte(user))
				if k, v := r.msgs.Cursor().Last(); k != nil {
					m, err := decodeMessage(v, name, binary.BigEndian.Uint64(k))
					if err != nil {
						return err
					}
					st.Last = &m
				}
			}
			out = append(out, st)
		}
		return nil
	})
	return out, err
}

// userBucket returns user's bucket in a read transaction; nil if none.
func userBucket(tx *bolt.Tx, user string) *bolt.Bucket {
	users := tx.Bucket(bucketUsers)
	if users == nil {
		return nil
	}
	return users.Bucket([]byte(user))
}

// user applies one user write.
func (w *writeTx) user(kind opKind, req userReq) (result, error) {
	users, err := w.tx.CreateBucketIfNotExists(bucketUsers)
	if err != nil {
		return result{}, err
	}
	ub, err := users.CreateBucketIfNotExists([]byte(req.user))
	if err != nil {
		return result{}, fmt.Errorf("user %q: %w", req.user, err)
	}
	if kind == opName {
		key := keySeen
		if req.chosen {
			key = keyName
		}
		return result{}, ub.Put(key, []byte(req.name))
	}
	list, err := ub.CreateBucketIfNotExists(bucketUserList)
	if err != nil {
		return result{}, fmt.Errorf("user %q: %w", req.user, err)
	}
	room := []byte(req.room)
	had := list.Get(room) != nil
	if kind == opUnlist {
		if !had {
			return result{}, nil
		}
		return result{hit: true}, list.Delete(room)
	}
	if had {
		return result{}, nil
	}
	if err := list.Put(room, u64(uint64(w.now))); err != nil {
		return result{}, err
	}
	return result{hit: true}, capList(ub, list)
}

// capList drops the oldest entries of a list past core.MaxListedRooms.
// It reads the whole list (at most one entry more than the cap), which
// only an add that grew it does.
func capList(ub, list *bolt.Bucket) error {
	entries, err := readList(ub)
	if err != nil || len(entries) <= core.MaxListedRooms {
		return err
	}
	slices.SortFunc(entries, newestFirst)
	for _, e := range entries[core.MaxListedRooms:] {
		if err := list.Delete([]byte(e.room)); err != nil {
			return err
		}
	}
	return nil
}
