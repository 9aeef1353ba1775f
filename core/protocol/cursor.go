package protocol

import (
	"encoding/base64"
	"encoding/binary"
	"hash/crc32"
	"slices"
)

// Cursor is a client's position in each room it follows: the last seq
// delivered. The key UserRoom ("~") holds the position in the user's own
// stream of "room" events. On the wire it is an opaque, URL-safe string that carries
// everything a node needs to resume, so no node keeps per-client state.
type Cursor map[string]uint64

const (
	cursorVersion = 1
	// MaxCursorLen bounds an encoded cursor (128 rooms of long names fit).
	MaxCursorLen = 24 << 10
)

var (
	crcTable = crc32.MakeTable(crc32.Castagnoli)
	b64      = base64.RawURLEncoding
)

// Encode returns the wire form: base64url of a version byte, then per room
// (sorted) a varint name length, the name and a varint seq, then a CRC-32C
// of all that. The checksum catches truncation and tampering by accident;
// a deliberately forged cursor can only move its holder's own position in
// rooms it may read anyway.
func (c Cursor) Encode() string {
	rooms := make([]string, 0, len(c))
	for r := range c {
		rooms = append(rooms, r)
	}
	slices.Sort(rooms)
	buf := make([]byte, 0, 8+len(c)*16)
	buf = append(buf, cursorVersion)
	for _, r := range rooms {
		buf = binary.AppendUvarint(buf, uint64(len(r)))
		buf = append(buf, r...)
		buf = binary.AppendUvarint(buf, c[r])
	}
	buf = binary.BigEndian.AppendUint32(buf, crc32.Checksum(buf, crcTable))
	return b64.EncodeToString(buf)
}

// ParseCursor decodes a cursor. Any defect is a bad_request error.
func ParseCursor(s string) (Cursor, error) {
	bad := func(why string) (Cursor, error) {
		return nil, Errorf(CodeBadRequest, "invalid cursor: %s", why)
	}
	if len(s) > MaxCursorLen {
		return bad("too long")
	}
	buf, err := b64.DecodeString(s)
	if err != nil || len(buf) < 5 {
		return bad("not a cursor")
	}
	body, sum := buf[:len(buf)-4], binary.BigEndian.Uint32(buf[len(buf)-4:])
	if crc32.Checksum(body, crcTable) != sum {
		return bad("checksum mismatch")
	}
	if body[0] != cursorVersion {
		return bad("unknown version")
	}
	c := Cursor{}
	for p := body[1:]; len(p) > 0; {
		n, k := binary.Uvarint(p)
		if k <= 0 || n > uint64(len(p)-k) {
			return bad("truncated room")
		}
		room := string(p[k : k+int(n)])
		p = p[k+int(n):]
		seq, k := binary.Uvarint(p)
		if k <= 0 {
			return bad("truncated seq")
		}
		p = p[k:]
		if room != UserRoom && ValidRoom(room) != nil {
			return bad("bad room name")
		}
		c[room] = seq
	}
	return c, nil
}
