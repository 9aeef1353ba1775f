package redis

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	goredis "github.com/redis/go-redis/v9"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/protocol"
)

// maxPage caps the messages one Since or Before returns; callers page on.
const maxPage = 1000

// logRange reads a range of a room's log within page's transaction.
type logRange func(ctx context.Context, p goredis.Pipeliner, log string) *goredis.XMessageSliceCmd

// sinceRange reads up to limit entries after seq after.
func sinceRange(after uint64, limit int) logRange {
	if limit <= 0 || after == math.MaxUint64 {
		return nil
	}
	return func(ctx context.Context, p goredis.Pipeliner, log string) *goredis.XMessageSliceCmd {
		return p.XRangeN(ctx, log, strconv.FormatUint(after+1, 10), "+", int64(min(limit, maxPage)))
	}
}

// beforeRange reads up to limit entries before seq before, newest first;
// before == 0 means from the head.
func beforeRange(before uint64, limit int) logRange {
	if limit <= 0 || before == 1 {
		return nil
	}
	end := "+"
	if before > 1 {
		end = strconv.FormatUint(before-1, 10)
	}
	return func(ctx context.Context, p goredis.Pipeliner, log string) *goredis.XMessageSliceCmd {
		return p.XRevRangeN(ctx, log, end, "-", int64(min(limit, maxPage)))
	}
}

// Since implements core.Store. It returns at most 1000 messages at once.
func (e *Engine) Since(ctx context.Context, room string, after uint64, limit int) (core.Page, error) {
	if err := e.enter(); err != nil {
		return core.Page{}, err
	}
	defer e.leave()
	p, _, err := e.page(ctx, "since", room, sinceRange(after, limit))
	return p, err
}

// Before implements core.Store. It returns at most 1000 messages at once.
func (e *Engine) Before(ctx context.Context, room string, before uint64, limit int) (core.Page, error) {
	if err := e.enter(); err != nil {
		return core.Page{}, err
	}
	defer e.leave()
	p, _, err := e.page(ctx, "before", room, beforeRange(before, limit))
	if err == nil {
		slices.Reverse(p.Messages)
	}
	return p, err
}

// page reads room's bounds and epoch and, unless read is nil, a range of
// its log, in one MULTI: the page and its bounds are one snapshot.
func (e *Engine) page(ctx context.Context, op, room string, read logRange) (core.Page, string, error) {
	k := e.keys.room(room)
	var (
		meta *goredis.SliceCmd
		xs   *goredis.XMessageSliceCmd
	)
	err := e.call(ctx, op, func(ctx context.Context) error {
		_, err := e.rdb.TxPipelined(ctx, func(p goredis.Pipeliner) error {
			meta = p.HMGet(ctx, k.meta, "head", "first", "epoch")
			if read != nil {
				xs = read(ctx, p, k.log)
			}
			return nil
		})
		return err
	})
	if err != nil {
		return core.Page{}, "", err
	}
	p, epoch, err := bounds(room, meta.Val())
	if err != nil || xs == nil {
		return p, epoch, err
	}
	p.Messages = make([]protocol.Message, 0, len(xs.Val()))
	for _, x := range xs.Val() {
		m, err := decodeEntry(room, x)
		if err != nil {
			return core.Page{}, "", err
		}
		p.Messages = append(p.Messages, m)
	}
	return p, epoch, nil
}

// bounds reads head, first and epoch from an HMGET of a room's meta; a
// room with no meta is empty: head 0, first 1.
func bounds(room string, vals []any) (core.Page, string, error) {
	p := core.Page{First: 1}
	if len(vals) != 3 || vals[0] == nil {
		return p, "", nil
	}
	head, err1 := strconv.ParseUint(fmt.Sprint(vals[0]), 10, 64)
	first, err2 := strconv.ParseUint(fmt.Sprint(vals[1]), 10, 64)
	if err1 != nil || err2 != nil || first > head+1 {
		return core.Page{}, "", fmt.Errorf("%w: %s: meta %v", errCorrupt, room, vals)
	}
	epoch, _ := vals[2].(string)
	p.Head, p.First = head, first
	return p, epoch, nil
}

// decodeEntry decodes one stream entry: id <seq>-0, field m the record.
func decodeEntry(room string, x goredis.XMessage) (protocol.Message, error) {
	seqText, _, _ := strings.Cut(x.ID, "-")
	seq, err := strconv.ParseUint(seqText, 10, 64)
	data, ok := x.Values["m"].(string)
	if err != nil || !ok {
		return protocol.Message{}, fmt.Errorf("%w: %s entry %s", errCorrupt, room, x.ID)
	}
	return decodeRecord(data, room, seq)
}
