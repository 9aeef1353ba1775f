package protocol

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// UserRoom is how a client names its own stream of user-scoped events:
// the "room" envelopes that say a room appeared in or left the user's
// list. Every session follows it without joining; a WebSocket client
// resumes it with {"type":"join","room":"~","since":N}, and SSE and poll
// cursors carry its position under this key. No other room name may
// start with '~' (see ValidRoom), so it can never be a real room.
const UserRoom = "~"

// Reasons a "room" envelope gives in its reason field.
const (
	ReasonDM     = "dm"     // a direct-message room got its first message
	ReasonInvite = "invite" // reserved: a room someone else added the user to
	ReasonJoined = "joined" // one of the user's sessions joined the room
	ReasonLeft   = "left"   // the user left the room (an explicit leave)
)

// Peer is the other user of a direct-message room.
type Peer struct {
	User string `json:"user"`
	Name string `json:"name"`
}

// MaxDisplayName bounds a display name, in characters (runes), after
// normalisation.
const MaxDisplayName = 64

// maxDisplayInput bounds what CleanDisplayName looks at, in bytes, before
// it normalises: 64 characters of up to 4 bytes, each with room for a few
// combining marks that composition may fold away.
const maxDisplayInput = 1 << 10

// CleanDisplayName returns name as it is stored and shown: NFC-normalised
// (so "Zoe\u0308" and "Zoë" are one name) and trimmed of white space at
// both ends. It is a bad_request *Error, whose message does not echo the
// name, unless name is valid UTF-8 of at most 1 KiB and the result holds
// 1 to MaxDisplayName characters, each a name rune (see NameRune: no
// control, format, bidi-control or invisible rune) or a space separator
// (Zs), so that "Zoë Smith" and "山田 太郎" pass while "\u202eevil" and
// "a\u200bb" do not.
func CleanDisplayName(name string) (string, error) {
	if len(name) > maxDisplayInput {
		return "", Errorf(CodeBadRequest, "name is longer than %d characters", MaxDisplayName)
	}
	if !utf8.ValidString(name) {
		return "", Errorf(CodeBadRequest, "name is not valid UTF-8")
	}
	clean := strings.TrimSpace(norm.NFC.String(name))
	if clean == "" {
		return "", Errorf(CodeBadRequest, "name is empty")
	}
	if n := utf8.RuneCountInString(clean); n > MaxDisplayName {
		return "", Errorf(CodeBadRequest, "name is longer than %d characters", MaxDisplayName)
	}
	for _, r := range clean {
		if !DisplayRune(r) {
			return "", Errorf(CodeBadRequest, "name has a control, format, bidi-control or invisible character")
		}
	}
	return clean, nil
}

// DisplayRune reports whether r may appear in a display name: a name rune
// (NameRune) or a space separator (Zs) such as U+0020 or U+3000.
func DisplayRune(r rune) bool {
	return NameRune(r) || unicode.Is(unicode.Zs, r)
}
