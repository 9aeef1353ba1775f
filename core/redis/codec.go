package redis

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/protocol"
)

// errCorrupt reports a stored record or a publication that does not decode.
var errCorrupt = errors.New("redis: corrupt record")

// record is the stored form of a log entry: JSON with one-letter names.
// Room and Seq are not in it: they are the record's key and stream id.
// The scripts read i (to forget a pruned message's id), s (to prune by
// age), k (to refuse an edit of an edit) and a (to release a pruned
// message's files) with cjson, which is why it is JSON and not bolt's
// binary record. A record is the entry as appended; an edited or
// deleted message's state is beside it (edit.go).
type record struct {
	ID     string          `json:"i"`
	From   string          `json:"f"`
	Name   string          `json:"n"`
	Text   string          `json:"t"`
	TS     int64           `json:"s"`
	Kind   string          `json:"k,omitempty"` // edit, delete
	Target uint64          `json:"g,omitempty"` // an edit's or a delete's message
	Files  []protocol.File `json:"a,omitempty"` // a message's attachments
}

// encodeRecord returns the stored form of m.
func encodeRecord(m protocol.Message) string {
	b, err := json.Marshal(record{ID: m.ID, From: m.From, Name: m.Name, Text: m.Text, TS: m.TS,
		Kind: m.Kind, Target: m.Target, Files: m.Files})
	if err != nil { // strings and an int64 always marshal
		panic("redis: encode record: " + err.Error())
	}
	return string(b)
}

// decodeRecord decodes the record stored as seq of room.
func decodeRecord(data, room string, seq uint64) (protocol.Message, error) {
	var r record
	if err := json.Unmarshal([]byte(data), &r); err != nil {
		return protocol.Message{}, fmt.Errorf("%w: %s seq %d: %v", errCorrupt, room, seq, err)
	}
	if r.ID == "" {
		return protocol.Message{}, fmt.Errorf("%w: %s seq %d: no id", errCorrupt, room, seq)
	}
	if r.Kind != "" && r.Kind != protocol.TypeEdit && r.Kind != protocol.TypeDelete {
		return protocol.Message{}, fmt.Errorf("%w: %s seq %d: kind %q", errCorrupt, room, seq, r.Kind)
	}
	if len(r.Files) == 0 {
		r.Files = nil
	}
	return protocol.Message{Room: room, Seq: seq, ID: r.ID, From: r.From, Name: r.Name, Text: r.Text, TS: r.TS,
		Kind: r.Kind, Target: r.Target, Files: r.Files}, nil
}

// A publication on a room's channel or the control channel starts with
// one byte that says what follows.
const (
	kindMessage   = 'm' // "m<seq> <record>": a committed message, published by the append script
	kindEphemeral = 'e' // "e<envelope JSON>": Broadcast
	kindControl   = 'c' // "c<control JSON>": Announce
)

// publication is one decoded pub/sub payload.
type publication struct {
	kind byte
	msg  protocol.Message  // kindMessage
	env  protocol.Envelope // kindEphemeral
	ctl  core.Control      // kindControl
}

// encodeEphemeral and encodeControl build the payloads the publisher
// sends; the append script builds kindMessage payloads itself.
func encodeEphemeral(e protocol.Envelope) (string, error) { return encodeJSON(kindEphemeral, e) }
func encodeControl(c core.Control) (string, error)        { return encodeJSON(kindControl, c) }

func encodeJSON(kind byte, v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	return string(kind) + string(b), nil
}

// decodePublication decodes a payload received on room's channel (room is
// empty for the control channel). It never panics; anything it cannot
// read is errCorrupt.
func decodePublication(room, payload string) (publication, error) {
	if payload == "" {
		return publication{}, fmt.Errorf("%w: empty publication", errCorrupt)
	}
	p := publication{kind: payload[0]}
	body := payload[1:]
	switch p.kind {
	case kindMessage:
		seqText, rec, ok := strings.Cut(body, " ")
		seq, err := strconv.ParseUint(seqText, 10, 64)
		if !ok || err != nil || seq == 0 {
			return publication{}, fmt.Errorf("%w: message publication without a seq", errCorrupt)
		}
		p.msg, err = decodeRecord(rec, room, seq)
		return p, err
	case kindEphemeral:
		if err := json.Unmarshal([]byte(body), &p.env); err != nil {
			return publication{}, fmt.Errorf("%w: ephemeral: %v", errCorrupt, err)
		}
		return p, nil
	case kindControl:
		if err := json.Unmarshal([]byte(body), &p.ctl); err != nil {
			return publication{}, fmt.Errorf("%w: control: %v", errCorrupt, err)
		}
		return p, nil
	}
	return publication{}, fmt.Errorf("%w: unknown publication kind %q", errCorrupt, p.kind)
}
