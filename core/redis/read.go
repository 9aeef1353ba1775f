package redis

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/protocol"
)

// maxPage caps the messages one Since or Before returns; callers page on.
const maxPage = 1000

// logRange is a range of a room's log for readScript: forward (XRANGE)
// or reverse (XREVRANGE) from start to end, at most count entries; count
// 0 reads the bounds only.
type logRange struct {
	reverse    bool
	start, end string
	count      int
}

// sinceRange reads up to limit entries after seq after.
func sinceRange(after uint64, limit int) logRange {
	if limit <= 0 || after == math.MaxUint64 {
		return logRange{}
	}
	return logRange{start: strconv.FormatUint(after+1, 10), end: "+", count: min(limit, maxPage)}
}

// beforeRange reads up to limit entries before seq before, newest first;
// before == 0 means from the head.
func beforeRange(before uint64, limit int) logRange {
	if limit <= 0 || before == 1 {
		return logRange{}
	}
	end := "+"
	if before > 1 {
		end = strconv.FormatUint(before-1, 10)
	}
	return logRange{reverse: true, start: end, end: "-", count: min(limit, maxPage)}
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

// page reads room's bounds and epoch and a range of its log, each entry
// in its current state, in one script: the page and its bounds are one
// snapshot.
func (e *Engine) page(ctx context.Context, op, room string, read logRange) (core.Page, string, error) {
	k := e.keys.room(room)
	dir := "f"
	if read.reverse {
		dir = "r"
	}
	var res []any
	err := e.call(ctx, op, func(ctx context.Context) error {
		var err error
		res, err = readScript.Run(ctx, e.rdb, []string{k.meta, k.log, k.cur}, dir, read.start, read.end, read.count).Slice()
		return err
	})
	if err != nil {
		return core.Page{}, "", err
	}
	if len(res) != 3 {
		return core.Page{}, "", fmt.Errorf("%w: %s: read answered %v", errCorrupt, room, res)
	}
	meta, _ := res[0].([]any)
	p, epoch, err := bounds(room, meta)
	if err != nil {
		return core.Page{}, "", err
	}
	xs, _ := res[1].([]any)
	states, _ := res[2].([]any)
	if len(xs) == 0 {
		return p, epoch, nil
	}
	if len(states) != len(xs) {
		return core.Page{}, "", fmt.Errorf("%w: %s: %d entries, %d states", errCorrupt, room, len(xs), len(states))
	}
	p.Messages = make([]protocol.Message, 0, len(xs))
	for i, x := range xs {
		m, err := decodeEntry(room, x)
		if err == nil {
			m, err = applyState(m, states[i])
		}
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

// decodeEntry decodes one stream entry as a script returns it: {id
// <seq>-0, {"m", record}}.
func decodeEntry(room string, x any) (protocol.Message, error) {
	e, _ := x.([]any)
	var (
		id     string
		fields []any
	)
	if len(e) == 2 {
		id, _ = e[0].(string)
		fields, _ = e[1].([]any)
	}
	seqText, _, _ := strings.Cut(id, "-")
	seq, err := strconv.ParseUint(seqText, 10, 64)
	if err != nil || len(fields) != 2 || fields[0] != "m" {
		return protocol.Message{}, fmt.Errorf("%w: %s entry %v", errCorrupt, room, x)
	}
	data, _ := fields[1].(string)
	return decodeRecord(data, room, seq)
}
