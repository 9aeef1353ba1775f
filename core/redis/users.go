package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	goredis "github.com/redis/go-redis/v9"

	"github.com/chatd/chatd/core"
)

// What the engine keeps per user (core.UserStore): the hash
// <prefix>:user:{<user>} (name: chosen, seen: from a token) and the sorted
// set <prefix>:user:{<user>}:rooms (room -> when added, Unix ms by
// Config.Now). A user's stream of "room" events (core.UserStream) is a
// room like any other, trimmed to core.UserStreamRetain.

var _ core.UserStore = (*Engine)(nil)

// listAddScript adds a room to a user's list unless it is there, and
// drops the oldest entries past a cap. KEYS: the list. ARGV: room, stamp,
// cap. It returns 1 if it added the room.
var listAddScript = goredis.NewScript(`
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
local over = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[3])
if over > 0 then redis.call('ZREMRANGEBYRANK', KEYS[1], 0, over - 1) end
return 1
`)

// UserNames implements core.UserStore: one HMGET per user, pipelined.
func (e *Engine) UserNames(ctx context.Context, users []string) (map[string]core.UserNames, error) {
	if err := e.enter(); err != nil {
		return nil, err
	}
	defer e.leave()
	out := make(map[string]core.UserNames, len(users))
	if len(users) == 0 {
		return out, nil
	}
	cmds := make([]*goredis.SliceCmd, len(users))
	err := e.call(ctx, "user_names", func(ctx context.Context) error {
		_, err := e.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for i, u := range users {
				cmds[i] = p.HMGet(ctx, e.keys.user(u), "name", "seen")
			}
			return nil
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	for i, u := range users {
		v := cmds[i].Val()
		if len(v) != 2 || (v[0] == nil && v[1] == nil) {
			continue
		}
		chosen, _ := v[0].(string)
		seen, _ := v[1].(string)
		out[u] = core.UserNames{Chosen: chosen, Seen: seen}
	}
	return out, nil
}

// SetUserName implements core.UserStore.
func (e *Engine) SetUserName(ctx context.Context, user, name string, chosen bool) error {
	if err := errors.Join(validKey("user", user), validKey("name", name)); err != nil {
		return err
	}
	if err := e.enter(); err != nil {
		return err
	}
	defer e.leave()
	field := "seen"
	if chosen {
		field = "name"
	}
	return e.call(ctx, "set_user_name", func(ctx context.Context) error {
		return e.rdb.HSet(ctx, e.keys.user(user), field, name).Err()
	})
}

// AddUserRoom implements core.UserStore with listAddScript. Of entries
// stamped alike, the one whose name sorts last counts as the newest.
func (e *Engine) AddUserRoom(ctx context.Context, user, room string) (bool, error) {
	if err := errors.Join(validKey("user", user), validKey("room", room)); err != nil {
		return false, err
	}
	if err := e.enter(); err != nil {
		return false, err
	}
	defer e.leave()
	var added int64
	err := e.call(ctx, "add_user_room", func(ctx context.Context) error {
		var err error
		added, err = listAddScript.Run(ctx, e.rdb, []string{e.keys.userRooms(user)},
			room, e.cfg.Now().UnixMilli(), core.MaxListedRooms).Int64()
		return err
	})
	return added == 1, err
}

// RemoveUserRoom implements core.UserStore.
func (e *Engine) RemoveUserRoom(ctx context.Context, user, room string) (bool, error) {
	if err := errors.Join(validKey("user", user), validKey("room", room)); err != nil {
		return false, err
	}
	if err := e.enter(); err != nil {
		return false, err
	}
	defer e.leave()
	var n int64
	err := e.call(ctx, "remove_user_room", func(ctx context.Context) error {
		var err error
		n, err = e.rdb.ZRem(ctx, e.keys.userRooms(user), room).Result()
		return err
	})
	return n == 1, err
}

// UserRooms implements core.UserStore.
func (e *Engine) UserRooms(ctx context.Context, user string) ([]string, error) {
	if err := e.enter(); err != nil {
		return nil, err
	}
	defer e.leave()
	var rooms []string
	err := e.call(ctx, "user_rooms", func(ctx context.Context) error {
		var err error
		rooms, err = e.rdb.ZRangeArgs(ctx, goredis.ZRangeArgs{Key: e.keys.userRooms(user), Start: 0, Stop: core.MaxListedRooms - 1, Rev: true}).Result()
		return err
	})
	return rooms, err
}

// RoomStates implements core.UserStore: per room its meta, its newest
// entry and the user's read position, all rooms in one pipeline (not a
// MULTI: a Cluster would spread the rooms over slots). An append between
// the reads can make the newest entry newer than the head read; the head
// is then raised to it.
func (e *Engine) RoomStates(ctx context.Context, user string, rooms []string) ([]core.RoomState, error) {
	if err := e.enter(); err != nil {
		return nil, err
	}
	defer e.leave()
	type roomCmds struct {
		meta *goredis.SliceCmd
		last *goredis.XMessageSliceCmd
		read *goredis.StringCmd
	}
	cmds := make([]roomCmds, len(rooms))
	err := e.call(ctx, "room_states", func(ctx context.Context) error {
		_, err := e.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for i, room := range rooms {
				k := e.keys.room(room)
				cmds[i] = roomCmds{meta: p.HMGet(ctx, k.meta, "head", "first", "epoch"),
					last: p.XRevRangeN(ctx, k.log, "+", "-", 1), read: p.HGet(ctx, k.reads, user)}
			}
			return nil
		})
		if errors.Is(err, goredis.Nil) {
			err = nil // a user with no read position in some room
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make([]core.RoomState, len(rooms))
	for i, room := range rooms {
		st, err := readRoomState(room, cmds[i].meta, cmds[i].last, cmds[i].read)
		if err != nil {
			return nil, err
		}
		out[i] = st
	}
	// The newest entry needs no current state: any edit or delete of it
	// would be a newer entry.
	return out, nil
}

// readRoomState reads one room's answers.
func readRoomState(room string, meta *goredis.SliceCmd, last *goredis.XMessageSliceCmd, read *goredis.StringCmd) (core.RoomState, error) {
	p, _, err := bounds(room, meta.Val())
	if err != nil {
		return core.RoomState{}, err
	}
	st := core.RoomState{Room: room, Head: p.Head, First: p.First}
	if v, err := read.Result(); err == nil {
		if st.Read, err = strconv.ParseUint(v, 10, 64); err != nil {
			return core.RoomState{}, fmt.Errorf("%w: %s: read position %q", errCorrupt, room, v)
		}
	}
	if xs := last.Val(); len(xs) == 1 {
		x := xs[0]
		rec, _ := x.Values["m"].(string)
		m, err := decodeEntry(room, []any{x.ID, []any{"m", rec}})
		if err != nil {
			return core.RoomState{}, err
		}
		st.Last = &m
		st.Head = max(st.Head, m.Seq)
	}
	return st, nil
}
