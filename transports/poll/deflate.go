package poll

import (
	"hash/crc32"
	"net/http"
	"strconv"

	"github.com/chatd/chatd/core/protocol"
	"github.com/chatd/chatd/transports/httpx"
	"github.com/chatd/chatd/transports/internal/deflate"
)

// Deflated answers. A poll with deflate= asks for its answer's body as a
// chunk of a deflate stream that goes on from one answer to the next, as
// a WebSocket's permessage-deflate with context takeover does: each
// answer may refer back to the text of the answers before it, which a
// chat's answers repeat (keys, rooms, names), so that an answer of one
// message shrinks about 3.5× where gzip, each answer on its own, gains
// little below three or four messages. A poll client's answers are most
// often one or two messages, and over HTTP/1.1 each comes with a head of
// about 170 bytes that nothing compresses: gzip saved 1.37× a delivery
// in a broadcast to 5,000 poll clients on HTTP/1.1.
//
// The stream's state is kept with the session the handler keeps for the
// client's next poll (keeper): a poll that carries on with the session
// kept from its last answer, and says deflate=1, goes on with the
// stream; any other (a new session: another node, a lost answer, a
// client that starts over with deflate=new, a client that sends no key)
// starts a new one, and its answer says so, so that client and server
// never disagree on what an answer refers back to; so does the answer
// after one that left the cursor where it was (appendDeflated). The
// body is
//
//	<c|n><length> <crc>\n<deflate bytes, ending in a sync flush>
//
// c: the stream goes on; n: a new stream starts with this answer (the
// client empties its window first); length: the answer's JSON length,
// once inflated; crc: its CRC-32 (IEEE), 8 hex digits, so that a window
// that is not the server's is found out rather than trusted. It refers
// back at most deflate.HistSize bytes (2 KiB), which is all a session
// keeps between answers. A parked poll (quiet for Quiet) drops its
// session's stream: its answer starts a new one.

// deflateMode is what a poll's deflate= asks.
type deflateMode uint8

const (
	deflateOff deflateMode = iota // no deflate= (or empty): plain or gzip
	deflateNew                    // deflate=new (any value but 1): start a stream
	deflateOn                     // deflate=1: go on with the stream of the last answer
)

// deflateOf reads r's deflate= (empty: none).
func deflateOf(r *http.Request) deflateMode {
	switch httpx.QueryValue(r.URL.RawQuery, "deflate") {
	case "":
		return deflateOff
	case "1":
		return deflateOn
	default:
		return deflateNew
	}
}

// zstream is a session's side of a deflated stream. Owned by the poll
// that holds the session (or answers it, parked).
type zstream struct {
	hist deflate.History
	// live: the next poll that carries on with the session, from the
	// cursor of its last answer, has hist in its window (appendDeflated).
	live bool
}

// drop ends the stream: the next deflated answer starts one.
func (z *zstream) drop() {
	z.hist.Release()
	z.live = false
}

// appendDeflated appends body, deflated as the next chunk of z (or of a
// new stream unless mode is deflateOn and z is live), to dst with its
// prefix, and returns it. The stream goes on past this answer only if
// the answer moved the client's cursor (advanced): a poll presents the
// cursor of an answer that moved it only once it has read that answer,
// so the stream a kept session goes on with is always the one the
// client's window holds. An answer that left the cursor where it was (no
// news, or only presence and the like) could be lost and the client poll
// again from the same cursor, its window without it.
func appendDeflated(dst []byte, z *zstream, mode deflateMode, body []byte, advanced bool) []byte {
	kind := byte('c')
	if mode != deflateOn || !z.live {
		z.hist.Release()
		kind = 'n'
	}
	dst = append(dst, kind)
	dst = strconv.AppendInt(dst, int64(len(body)), 10)
	dst = append(dst, ' ')
	dst = appendHex8(dst, crc32.ChecksumIEEE(body))
	dst = append(dst, '\n')
	out := &httpx.SliceWriter{B: dst}
	z.hist.Deflate(out, body)
	z.live = advanced
	return out.B
}

// moved reports whether next, the cursor after an answer, holds a
// position that cur, the one the poll resumed from (parsed: rooms it no
// longer subscribes to left out), does not: only then can the client not
// present next without having read the answer.
func moved(cur, next protocol.Cursor) bool {
	for room, seq := range next {
		if s, ok := cur[room]; !ok || s != seq {
			return true
		}
	}
	return false
}

// appendHex8 appends v in 8 lowercase hex digits.
func appendHex8(dst []byte, v uint32) []byte {
	const digits = "0123456789abcdef"
	for shift := 28; shift >= 0; shift -= 4 {
		dst = append(dst, digits[v>>uint(shift)&0xf])
	}
	return dst
}
