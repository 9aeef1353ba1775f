package redis

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/protocol"
)

// Edits and deletes. A stream entry cannot change, so a room's current
// state lives beside its log, in the hash <prefix>:{<room>}:cur, field
// <seq>, applied to every entry as it is read (Since, Before, Lookup, a
// duplicate's answer) in the same script that reads it:
//
//	{"t":<text>,"e":<stamp>,"x":[<seq>…]}  an edited message: its text,
//	                                       its latest edit's stamp, the
//	                                       seqs of its edits
//	{"d":true}                             a deleted message, or an edit
//	                                       of one: served without text
//	                                       (and files)
//
// The append script checks an edit's or a delete's target and writes
// these fields in the step that appends the entry; pruning an entry
// removes its field.

// amendLib is the part of appendScript that checks and applies an edit
// or a delete. It needs luaLib.
const amendLib = `
local function refuse(code, msg) return nil, nil, {2, code, msg} end

-- checkTarget reads the message an edit or a delete changes: a retained
-- message, not deleted, and for an edit with room for one more. It
-- returns its record and the seqs of its edits, or a refusal to return.
local function checkTarget(log, cur, kind, target, first, head, maxEdits)
  local missing = 'no message ' .. s(target) .. ' in the room'
  if target < first or target > head then return refuse('not_found', missing) end
  local e = redis.call('XRANGE', log, s(target), s(target))
  if not e[1] then return refuse('not_found', missing) end
  local ok, r = pcall(cjson.decode, e[1][2][2])
  if not ok or type(r) ~= 'table' then
    return nil, nil, redis.error_reply('chatd: corrupt record at seq ' .. s(target))
  end
  if r.k then
    return refuse('bad_request', 'seq ' .. s(target) .. ' is ' .. tostring(r.k) .. ', not a message')
  end
  local x = {}
  local st = redis.call('HGET', cur, s(target))
  if st then
    local ok2, t = pcall(cjson.decode, st)
    if ok2 and type(t) == 'table' then
      if t.d then return refuse('not_found', 'message ' .. s(target) .. ' was deleted') end
      if type(t.x) == 'table' then x = t.x end
    end
  end
  if kind == 'edit' and #x >= maxEdits then
    return refuse('bad_request', 'a message may be edited at most ' .. s(maxEdits) .. ' times')
  end
  return e[1][2][2], x, nil
end

-- applyTarget writes what the stored edit or delete at seq changes: an
-- edit, the target's text (text, a JSON string), stamp and edits; a
-- delete, the target and each of its edits deleted, and the target's
-- record to out if it had files.
local function applyTarget(cur, kind, target, trec, x, seq, text, ts, out)
  if kind == 'edit' then
    local xs = {}
    for i, v in ipairs(x) do xs[i] = s(v) end
    xs[#xs + 1] = s(seq)
    redis.call('HSET', cur, s(target), '{"t":' .. text .. ',"e":' .. ts .. ',"x":[' .. table.concat(xs, ',') .. ']}')
    return
  end
  for _, v in ipairs(x) do redis.call('HSET', cur, s(v), '{"d":true}') end
  redis.call('HSET', cur, s(target), '{"d":true}')
  if string.find(trec, '"a":[', 1, true) then out[#out + 1] = trec end
end
`

// state is an entry's field in the cur hash.
type state struct {
	Text    *string  `json:"t"`
	Edited  int64    `json:"e"`
	Deleted bool     `json:"d"`
	Edits   []uint64 `json:"x"`
}

// applyState returns m as its state raw (a string from cur, or nil for
// none) makes it.
func applyState(m protocol.Message, raw any) (protocol.Message, error) {
	text, ok := raw.(string)
	if !ok || text == "" {
		return m, nil
	}
	var st state
	if err := json.Unmarshal([]byte(text), &st); err != nil {
		return protocol.Message{}, fmt.Errorf("%w: %s seq %d state: %v", errCorrupt, m.Room, m.Seq, err)
	}
	switch {
	case st.Deleted:
		return m.Redacted(), nil
	case m.IsMessage():
		if st.Text != nil {
			m.Text = *st.Text
		}
		m.Edited = st.Edited
	}
	return m, nil
}

// amendArgs are the append script's arguments for m's kind: kind,
// target, most edits, an edit's text as JSON, the stamp.
func amendArgs(m protocol.Message) []any {
	text := ""
	if m.Kind == protocol.TypeEdit {
		b, _ := json.Marshal(m.Text) // a string always marshals
		text = string(b)
	}
	return []any{m.Kind, m.Target, protocol.MaxEdits, text, strconv.FormatInt(m.TS, 10)}
}

// validKind checks what Append stores: a message, or an edit or a
// delete of a message (Target at least 1).
func validKind(m protocol.Message) error {
	switch m.Kind {
	case "":
		return nil
	case protocol.TypeEdit, protocol.TypeDelete:
		if m.Target == 0 {
			return protocol.Errorf(protocol.CodeBadRequest, "%s without a target", m.Kind)
		}
		return nil
	}
	return protocol.Errorf(protocol.CodeBadRequest, "unknown kind %q", m.Kind)
}

// release reports the files of records (from a script's answer) to the
// handler, if it is a core.FileReleaser.
func (e *Engine) release(room string, recs []any) {
	var files []protocol.File
	for _, r := range recs {
		rec, _ := r.(string)
		m, err := decodeRecord(rec, room, 1)
		if err != nil {
			e.log.Error("redis: files of a removed message not released", "room", room, "err", err)
			continue
		}
		files = append(files, m.Files...)
	}
	if len(files) == 0 {
		return
	}
	if fr, ok := e.handlerOrDrop().(core.FileReleaser); ok {
		fr.ReleaseFiles(room, files)
	}
}
