package httpx

import (
	"encoding/base64"
	"encoding/binary"
	"net/http"
	"strconv"
	"strings"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/core/protocol"
)

// ParseSubscription reads rooms= and the starting positions, and checks
// that id may use every room. Positions come from, in order:
//   - the Last-Event-ID header: a browser's EventSource reconnect. It is
//     the newest position the stream reached, so it alone decides, even
//     though the reconnect repeats the original URL;
//   - otherwise cursor=, with since=room:seq,room:seq pairs on top. since=
//     is what a client that moves from WebSocket, or joins a room, knows.
//
// fresh lists the rooms whose position came from since= (a new
// subscription, which gets a joined envelope even on poll). A nil cursor
// means no position at all: live start.
//
// Everything is bounded by maxRooms, the rooms one connection may hold,
// and each bound is checked on the raw length before anything is split or
// decoded (MaxStreamQuery and the bounds below it), then by count: the
// query as a whole; rooms= (more than maxRooms rooms is too_many_rooms);
// since= (more than maxRooms pairs, or a pair naming a room rooms= does
// not subscribe, is bad_request); the cursor (more than maxRooms rooms is
// bad_request).
//
// A cursor's rooms outside rooms= are dropped, not refused: a cursor is
// opaque, and clients keep it across subscription changes (an EventSource
// replays its Last-Event-ID after a leave), so refusing would strand a
// client that did nothing wrong. The returned cursor holds subscribed
// rooms only.
func ParseSubscription(r *http.Request, id auth.Identity, maxRooms int) (rooms []string, cur protocol.Cursor, fresh map[string]bool, err error) {
	if err := checkQueryLen(r, maxRooms); err != nil {
		return nil, nil, nil, err
	}
	return parseSubscription(parseStreamQuery(r.URL.RawQuery), r.Header.Get(lastEventID), id, maxRooms)
}

// checkQueryLen refuses a query string longer than MaxStreamQuery(maxRooms),
// before anything parses it.
func checkQueryLen(r *http.Request, maxRooms int) error {
	if len(r.URL.RawQuery) > MaxStreamQuery(maxRooms) {
		return protocol.Errorf(protocol.CodeBadRequest, "query string longer than %d bytes", MaxStreamQuery(maxRooms))
	}
	return nil
}

// parseSubscription is ParseSubscription on a parsed query q and the
// Last-Event-ID header's value, once the query's length has been checked.
func parseSubscription(q streamQuery, lastID string, id auth.Identity, maxRooms int) (rooms []string, cur protocol.Cursor, fresh map[string]bool, err error) {
	if len(lastID) > maxCursorLen(maxRooms) {
		return nil, nil, nil, errCursorTooLong(maxRooms)
	}
	rooms, subscribed, err := parseRooms(q.rooms, id, maxRooms)
	if err != nil {
		return nil, nil, nil, err
	}
	if lastID != "" {
		if cur, err = parseCursor(&q, lastID, subscribed, maxRooms); err != nil {
			return nil, nil, nil, err
		}
		return rooms, cur, nil, nil
	}
	if raw := q.cursor; raw != "" {
		if cur, err = parseCursor(&q, raw, subscribed, maxRooms); err != nil {
			return nil, nil, nil, err
		}
	}
	if s := q.since; s != "" {
		pairs, err := parseSince(s, subscribed, maxRooms)
		if err != nil {
			return nil, nil, nil, err
		}
		if cur == nil {
			cur = protocol.Cursor{}
		}
		fresh = make(map[string]bool, len(pairs))
		for room, seq := range pairs {
			cur[room] = seq
			fresh[room] = true
		}
	}
	return rooms, cur, fresh, nil
}

// MaxStreamQuery returns the longest query string a streaming request
// (/v1/ws, /v1/sse, /v1/poll) can need when a connection may hold maxRooms
// rooms: rooms= and since= at their longest and fully percent-escaped, a
// cursor, a ticket and a token, and 1 KiB for the small parameters
// (level=, cache busters). For 128 rooms it is about 153 KiB. Anything
// longer is refused before the query is parsed.
func MaxStreamQuery(maxRooms int) int {
	const escaped = 3 // a byte may take "%XX"
	return escaped*(maxRoomsLen(maxRooms)+maxSinceLen(maxRooms)) + maxCursorLen(maxRooms) +
		auth.MaxTicketLen + protocol.MaxTokenLen + 1<<10
}

// maxSeqDigits is the length of the largest seq in decimal.
var maxSeqDigits = len(strconv.FormatUint(^uint64(0), 10))

// maxRoomsLen is the longest rooms= value (unescaped) maxRooms rooms need:
// each name at its longest, and a comma after each.
func maxRoomsLen(maxRooms int) int { return maxRooms * (protocol.MaxRoomLen + 1) }

// maxSinceLen is the longest since= value (unescaped) maxRooms pairs need:
// room, colon, seq, comma.
func maxSinceLen(maxRooms int) int { return maxRooms * (protocol.MaxRoomLen + 1 + maxSeqDigits + 1) }

// maxCursorLen is the longest encoded cursor of maxRooms rooms: base64url
// of a version byte, per room the name's varint length, the name and the
// seq's varint, then a 4-byte checksum (see protocol.Cursor.Encode).
func maxCursorLen(maxRooms int) int {
	perRoom := len(binary.AppendUvarint(nil, protocol.MaxRoomLen)) + protocol.MaxRoomLen + binary.MaxVarintLen64
	return base64.RawURLEncoding.EncodedLen(1 + maxRooms*perRoom + 4)
}

// parseRooms reads a comma-separated room list: at least one room, at
// most maxRooms distinct ones, each well-formed and open to id. Empty
// entries and repeats are skipped. It returns the rooms in order and as a
// set.
func parseRooms(raw string, id auth.Identity, maxRooms int) ([]string, map[string]bool, error) {
	return parseRoomList(raw, id.CanAccess, maxRooms)
}

// parseRoomList is parseRooms with access, if not nil, as the check that a
// room is open to the client.
func parseRoomList(raw string, access func(string) error, maxRooms int) ([]string, map[string]bool, error) {
	if len(raw) > maxRoomsLen(maxRooms) {
		if strings.Count(raw, ",") >= maxRooms {
			return nil, nil, errTooManyRooms(maxRooms)
		}
		return nil, nil, protocol.Errorf(protocol.CodeBadRequest, "rooms= is longer than %d rooms can be", maxRooms)
	}
	// The names outlive the request (a session's rooms, a kept or parked
	// poll's position): one copy of the list keeps them from holding on
	// to the whole request line they were cut from.
	raw = strings.Clone(raw)
	var rooms []string
	seen := map[string]bool{}
	for more := raw != ""; more; {
		var name string
		name, raw, more = strings.Cut(raw, ",")
		if name == "" || seen[name] {
			continue
		}
		if len(rooms) == maxRooms {
			return nil, nil, errTooManyRooms(maxRooms)
		}
		if err := protocol.ValidRoom(name); err != nil {
			return nil, nil, err
		}
		if access != nil {
			if err := access(name); err != nil {
				return nil, nil, err
			}
		}
		seen[name] = true
		rooms = append(rooms, name)
	}
	if len(rooms) == 0 {
		return nil, nil, protocol.Errorf(protocol.CodeBadRequest, "rooms= must name at least one room")
	}
	return rooms, seen, nil
}

func errTooManyRooms(maxRooms int) error {
	return protocol.Errorf(protocol.CodeTooManyRooms, "at most %d rooms per connection", maxRooms)
}

// parseSince reads room:seq pairs separated by commas: at most maxRooms
// of them, each naming a room in subscribed. Room names may hold colons
// (dm:a:b), so the seq is what follows the last one.
func parseSince(s string, subscribed map[string]bool, maxRooms int) (protocol.Cursor, error) {
	if len(s) > maxSinceLen(maxRooms) || strings.Count(s, ",") >= maxRooms {
		return nil, protocol.Errorf(protocol.CodeBadRequest, "since= holds more than %d room:seq pairs", maxRooms)
	}
	cur := protocol.Cursor{}
	for more := true; more; {
		var pair string
		pair, s, more = strings.Cut(s, ",")
		i := strings.LastIndexByte(pair, ':')
		if i <= 0 {
			return nil, protocol.Errorf(protocol.CodeBadRequest, "since= takes room:seq pairs")
		}
		seq, err := strconv.ParseUint(pair[i+1:], 10, 64)
		if err != nil {
			return nil, protocol.Errorf(protocol.CodeBadRequest, "since= takes room:seq pairs")
		}
		room := pair[:i]
		if err := protocol.ValidRoom(room); err != nil {
			return nil, err
		}
		if !subscribed[room] {
			return nil, protocol.Errorf(protocol.CodeBadRequest, "since= names room %q, which rooms= does not subscribe", room)
		}
		cur[room] = seq
	}
	return cur, nil
}

// parseCursor decodes raw, a cursor of at most maxRooms rooms, through q
// (which may have read it already, see readCursor), and keeps the
// subscribed ones.
func parseCursor(q *streamQuery, raw string, subscribed map[string]bool, maxRooms int) (protocol.Cursor, error) {
	if len(raw) > maxCursorLen(maxRooms) {
		return nil, errCursorTooLong(maxRooms)
	}
	cur, err := q.readCursor(raw)
	if err != nil {
		return nil, err
	}
	if len(cur) > maxRooms {
		return nil, protocol.Errorf(protocol.CodeBadRequest, "invalid cursor: more than %d rooms", maxRooms)
	}
	for room := range cur {
		if !subscribed[room] {
			delete(cur, room)
		}
	}
	return cur, nil
}

func errCursorTooLong(maxRooms int) error {
	return protocol.Errorf(protocol.CodeBadRequest, "invalid cursor: longer than %d rooms can need", maxRooms)
}

// Advance returns the cursor after frames, for the given rooms only.
func Advance(cur protocol.Cursor, rooms []string, frames []core.Frame) protocol.Cursor {
	return AdvanceInto(nil, cur, rooms, frames)
}

// AdvanceInto is Advance into next, emptied first (a new map if next is
// nil), which must not be cur.
func AdvanceInto(next, cur protocol.Cursor, rooms []string, frames []core.Frame) protocol.Cursor {
	if next == nil {
		next = make(protocol.Cursor, len(rooms))
	} else {
		clear(next)
	}
	for _, room := range rooms {
		if pos, ok := cur[room]; ok {
			next[room] = pos
		}
	}
	for _, f := range frames {
		if f.Positions() {
			if _, ok := next[f.Room]; ok || f.Type == protocol.TypeJoined {
				next[f.Room] = f.Seq
			}
		}
	}
	return next
}
