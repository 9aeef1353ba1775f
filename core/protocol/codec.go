package protocol

import (
	"bytes"
	"encoding/json"
	"hash/fnv"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits the codec enforces on its own. The hub enforces the configurable ones.
const (
	MaxRoomLen  = 128 // bytes
	MaxIDLen    = 64  // bytes
	MaxTokenLen = 8192
	MaxRefLen   = 64
)

// DecodeClient parses one client frame and checks its shape: a known type
// and the fields that type needs. It never panics; every failure is an
// *Error with code bad_request. Text is returned as sent; the hub cleans it
// with CleanText, since the text limit is configurable.
func DecodeClient(data []byte) (Envelope, error) {
	var e Envelope
	if !utf8.Valid(data) {
		return e, Errorf(CodeBadRequest, "frame is not valid UTF-8")
	}
	data = bytes.TrimSpace(data)
	if len(data) == 0 || data[0] != '{' {
		return e, Errorf(CodeBadRequest, "frame must be a JSON object")
	}
	if err := decodeObject(data, &e); err != nil {
		return Envelope{}, &Error{Code: CodeBadRequest, Message: "malformed JSON envelope", Cause: err}
	}
	if len(e.Ref) > MaxRefLen {
		return Envelope{}, Errorf(CodeBadRequest, "ref longer than %d bytes", MaxRefLen)
	}
	return e, ValidateClient(&e)
}

// decodeObject decodes one JSON object into e as encoding/json does:
// without reflection when it has the plain shape DecodeFrameFast takes
// (every client envelope but a send with files or one with escapes),
// otherwise with encoding/json. encoding/json's reflection and the stack
// it grows were a tenth of a node's CPU in chat.
func decodeObject(data []byte, e *Envelope) error {
	p := fastParser{b: data}
	if p.envelope(e) && p.end() {
		return nil
	}
	// encoding/json takes its target as an interface, which would move
	// every caller's envelope to the heap, fast path or not: it decodes
	// into one of its own.
	slow := new(Envelope)
	err := json.Unmarshal(data, slow)
	*e = *slow
	return err
}

// ValidateClient checks that e is a well-formed client envelope.
func ValidateClient(e *Envelope) error {
	switch e.Type {
	case TypePing, TypePong:
		return nil
	case TypeJoin:
		if e.Room == UserRoom {
			return nil // the user's own stream, resumed from since
		}
		return ValidRoom(e.Room)
	case TypeLeave, TypeTyping:
		return ValidRoom(e.Room)
	case TypeSend:
		if err := ValidRoom(e.Room); err != nil {
			return err
		}
		if err := validID(e.ID, "send"); err != nil {
			return err
		}
		return validFileRefs(e.Files)
	case TypeEdit, TypeDelete:
		return validAmend(e)
	case TypeRead:
		if err := ValidRoom(e.Room); err != nil {
			return err
		}
		if e.Seq == 0 {
			return Errorf(CodeBadRequest, "read needs a seq of 1 or more")
		}
		return nil
	case TypeRefresh:
		if e.Token == "" || len(e.Token) > MaxTokenLen {
			return Errorf(CodeBadRequest, "refresh needs a token")
		}
		return nil
	case "":
		return Errorf(CodeBadRequest, "envelope has no type")
	default:
		return Errorf(CodeBadRequest, "unknown envelope type %q", truncate(e.Type, 32))
	}
}

// isPrintable reports whether s has no space, control character or
// U+FFFD. It is the rule for message ids, which are looser than names
// (see ValidRoom).
func isPrintable(s string) bool {
	for _, r := range s {
		if unicode.IsSpace(r) || unicode.IsControl(r) || r == utf8.RuneError {
			return false
		}
	}
	return true
}

// CleanText validates message text: it must be valid UTF-8, control
// characters (Cc) other than newline and tab are removed, and the result
// must hold 1 to max characters (runes) and not be all white space.
//
// Unlike names (see NameRune), text keeps format (Cf) and bidi-control
// characters: emoji sequences need U+200D and tag characters, and
// right-to-left writing needs the bidi marks.
func CleanText(s string, max int) (string, error) {
	if !utf8.ValidString(s) {
		return "", Errorf(CodeBadRequest, "text is not valid UTF-8")
	}
	clean := dropControls(s)
	if strings.TrimSpace(clean) == "" {
		return "", Errorf(CodeBadRequest, "text is empty")
	}
	if n := utf8.RuneCountInString(clean); n > max {
		return "", Errorf(CodeTooLarge, "text has %d characters; the limit is %d", n, max)
	}
	return clean, nil
}

// dropControls removes control characters (Cc) other than newline and tab.
func dropControls(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' {
			return r
		}
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, s)
}

// Encode returns the JSON encoding of e. Encoding an Envelope cannot fail.
func Encode(e Envelope) []byte {
	b, err := json.Marshal(e)
	if err != nil {
		panic("protocol: encode: " + err.Error()) // unreachable: Envelope has only plain fields.
	}
	return b
}

// EncodeJoined returns Encode of the joined envelope {"type":"joined"}
// with ref, room, head and recovered. A join encodes one for each room it
// joins, and encoding/json took about 4 µs of the node for each: two a
// client, 5% of the node in a reconnect storm of 10,000. This writes the
// bytes directly when ref and room need no escaping (printable ASCII
// but for the quote, the backslash and the <, > and & that
// encoding/json escapes), and goes to Encode otherwise.
func EncodeJoined(ref, room string, head uint64, recovered bool) []byte {
	if !plainJSON(ref) || !plainJSON(room) {
		return encodeJoined(ref, room, head, recovered)
	}
	b := make([]byte, 0, len(`{"type":"joined","ref":"","room":"","head":18446744073709551615,"recovered":false}`)+len(ref)+len(room))
	b = append(b, `{"type":"joined"`...)
	if ref != "" {
		b = append(b, `,"ref":"`...)
		b = append(b, ref...)
		b = append(b, '"')
	}
	if room != "" {
		b = append(b, `,"room":"`...)
		b = append(b, room...)
		b = append(b, '"')
	}
	b = append(b, `,"head":`...)
	b = strconv.AppendUint(b, head, 10)
	b = append(b, `,"recovered":`...)
	b = strconv.AppendBool(b, recovered)
	return append(b, '}')
}

// encodeJoined is EncodeJoined through Encode, apart so that head and
// recovered move to the heap only on this path.
func encodeJoined(ref, room string, head uint64, recovered bool) []byte {
	return Encode(Envelope{Type: TypeJoined, Ref: ref, Room: room, Head: &head, Recovered: &recovered})
}

// plainJSON reports whether encoding/json writes s as it is, between
// quotes.
func plainJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c >= 0x7f, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return false
		}
	}
	return true
}

// ControlTag is the control_tag of an encoded control envelope: the 64-bit
// FNV-1a of its bytes, never 0, so that every node and component tags an
// envelope alike and different envelopes get different tags (but for a
// 64-bit hash's collisions). It goes on the wire in hex.
func ControlTag(data []byte) uint64 {
	h := fnv.New64a()
	_, _ = h.Write(data)
	return max(h.Sum64(), 1)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
