package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	goredis "github.com/redis/go-redis/v9"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/protocol"
)

// Append implements core.Store with one script (appendScript): dedupe by
// id, next seq, store, prune, publish, atomically. It stamps TS from
// Config.Now. It first makes sure this node is subscribed to the room
// (see track), waiting up to Timeout the first time. The answer means
// durable only as far as Redis's persistence is (see Config.AcceptRisk).
// If ctx ends first it returns ctx.Err(); the message may or may not be
// stored, and re-sending the same id tells which.
func (e *Engine) Append(ctx context.Context, m protocol.Message) (protocol.Message, bool, error) {
	if err := errors.Join(validKey("room", m.Room), validKey("id", m.ID), validKind(m)); err != nil {
		return protocol.Message{}, false, err
	}
	if err := e.enter(); err != nil {
		return protocol.Message{}, false, err
	}
	defer e.leave()
	floor, err := e.track(ctx, m.Room)
	if err != nil {
		return protocol.Message{}, false, err
	}
	m.Seq, m.TS, m.Edited, m.Deleted = 0, e.cfg.Now().UnixMilli(), 0, false
	rec := encodeRecord(m)
	k := e.keys.room(m.Room)
	args := append([]any{m.ID, rec, core.Retain(m.Room, e.cfg.MaxMessages), k.channel, randomHex(8), floor}, amendArgs(m)...)
	var res []any
	err = e.call(ctx, "append", func(ctx context.Context) error {
		var err error
		res, err = appendScript.Run(ctx, e.rdb, []string{k.meta, k.log, k.ids, k.cur}, args...).Slice()
		return err
	})
	if err != nil {
		return protocol.Message{}, false, err
	}
	return e.appended(m, res)
}

// appended reads the append script's answer: {1, seq, record, state} for
// a duplicate, {2, code, message} for a refused edit or delete, {0, seq,
// head before a raise or -1, record…} for a new entry, whose records'
// files it releases.
func (e *Engine) appended(m protocol.Message, res []any) (protocol.Message, bool, error) {
	if len(res) == 3 && res[0] == int64(2) {
		code, _ := res[1].(string)
		msg, _ := res[2].(string)
		return protocol.Message{}, false, protocol.Errorf(protocol.Code(code), "%s", msg)
	}
	if len(res) < 3 {
		return protocol.Message{}, false, fmt.Errorf("%w: append answered %v", errCorrupt, res)
	}
	dup, _ := res[0].(int64)
	seq, _ := res[1].(int64)
	if seq <= 0 {
		return protocol.Message{}, false, fmt.Errorf("%w: append answered seq %v", errCorrupt, res[1])
	}
	if dup == 1 {
		if len(res) != 4 {
			return protocol.Message{}, false, fmt.Errorf("%w: append answered %v", errCorrupt, res)
		}
		rec, _ := res[2].(string)
		stored, err := decodeRecord(rec, m.Room, uint64(seq))
		if err != nil {
			return protocol.Message{}, false, err
		}
		stored, err = applyState(stored, res[3])
		return stored, true, err
	}
	defer e.release(m.Room, res[3:])
	if raised, _ := res[2].(int64); raised >= 0 {
		e.log.Error("redis: room's head was behind a seq this node delivered: Redis lost data; head raised so that no seq is reused",
			"room", m.Room, "stored_head", raised, "new_seq", seq)
	}
	m.Seq = uint64(seq)
	return m, false, nil
}

// Lookup implements core.Store, through the room's ids hash.
func (e *Engine) Lookup(ctx context.Context, room, id string) (protocol.Message, bool, error) {
	if err := e.enter(); err != nil {
		return protocol.Message{}, false, err
	}
	defer e.leave()
	k := e.keys.room(room)
	var res []any
	err := e.call(ctx, "lookup", func(ctx context.Context) error {
		var err error
		res, err = lookupScript.Run(ctx, e.rdb, []string{k.ids, k.log, k.cur}, id).Slice()
		if errors.Is(err, goredis.Nil) {
			res, err = nil, nil
		}
		return err
	})
	if err != nil || res == nil {
		return protocol.Message{}, false, err
	}
	if len(res) != 3 {
		return protocol.Message{}, false, fmt.Errorf("%w: lookup answered %v", errCorrupt, res)
	}
	seq, _ := res[0].(int64)
	rec, _ := res[1].(string)
	if seq <= 0 {
		return protocol.Message{}, false, fmt.Errorf("%w: lookup answered seq %v", errCorrupt, res[0])
	}
	m, err := decodeRecord(rec, room, uint64(seq))
	if err == nil {
		m, err = applyState(m, res[2])
	}
	return m, err == nil, err
}

// SetReads implements core.Store: one readsScript per room, all in one
// pipeline. Each Seq is set to the stored position.
func (e *Engine) SetReads(ctx context.Context, reads []core.ReadPosition) error {
	byRoom := map[string][]int{}
	var order []string
	for i, rp := range reads {
		if err := errors.Join(validKey("room", rp.Room), validKey("user", rp.User)); err != nil {
			return err
		}
		if byRoom[rp.Room] == nil {
			order = append(order, rp.Room)
		}
		byRoom[rp.Room] = append(byRoom[rp.Room], i)
	}
	if err := e.enter(); err != nil {
		return err
	}
	defer e.leave()
	if len(reads) == 0 {
		return nil
	}
	return e.call(ctx, "set_reads", func(ctx context.Context) error {
		cmds := make([]*goredis.Cmd, len(order))
		err := e.pipeScripts(ctx, func(p goredis.Pipeliner) {
			for r, room := range order {
				args := make([]any, 0, 2*len(byRoom[room]))
				for _, i := range byRoom[room] {
					args = append(args, reads[i].User, reads[i].Seq)
				}
				cmds[r] = readsScript.EvalSha(ctx, p, []string{e.keys.room(room).reads}, args...)
			}
		}, readsScript)
		if err != nil {
			return err
		}
		for r, room := range order {
			got, err := cmds[r].Int64Slice()
			if err != nil || len(got) != len(byRoom[room]) {
				return fmt.Errorf("%w: set reads answered %v, %v", errCorrupt, got, err)
			}
			for j, i := range byRoom[room] {
				reads[i].Seq = uint64(got[j])
			}
		}
		return nil
	})
}

// Reads implements core.Store.
func (e *Engine) Reads(ctx context.Context, room string) (map[string]uint64, error) {
	if err := e.enter(); err != nil {
		return nil, err
	}
	defer e.leave()
	var raw map[string]string
	err := e.call(ctx, "reads", func(ctx context.Context) error {
		var err error
		raw, err = e.rdb.HGetAll(ctx, e.keys.room(room).reads).Result()
		return err
	})
	if err != nil {
		return nil, err
	}
	reads := make(map[string]uint64, len(raw))
	for user, v := range raw {
		seq, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: read position of %q is %q", errCorrupt, room, user, v)
		}
		reads[user] = seq
	}
	return reads, nil
}
