package protocol

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxUserLen bounds a user id (a token's sub), in bytes. A dm room name
// ("dm:<a>:<b>") must still fit in MaxRoomLen, so two users whose ids
// together pass MaxRoomLen-4 bytes cannot share a dm room.
const MaxUserLen = 128

// ValidRoom reports whether name is a usable room name: 1 to MaxRoomLen
// bytes of valid UTF-8, every rune a name rune (see NameRune), no comma or
// asterisk (commas separate room lists in URLs; asterisks are patterns in
// the rooms claim), and not starting with '~', which is reserved for the
// user's own stream (UserRoom). Any failure is a bad_request *Error whose
// message does not echo the name.
func ValidRoom(name string) error {
	if name == "" {
		return Errorf(CodeBadRequest, "room name is empty")
	}
	if name[0] == UserRoom[0] {
		return Errorf(CodeBadRequest, "room names starting with ~ are reserved")
	}
	if len(name) > MaxRoomLen {
		return Errorf(CodeBadRequest, "room name longer than %d bytes", MaxRoomLen)
	}
	if !validName(name) || strings.ContainsAny(name, ",*") {
		return Errorf(CodeBadRequest, "room name has a space, comma, asterisk, control, format or invisible character")
	}
	return nil
}

// ValidUser reports whether id is a usable user id: 1 to MaxUserLen bytes
// of valid UTF-8, every rune a name rune (see NameRune). Commas, asterisks
// and colons are allowed, though an id with a comma or asterisk cannot
// appear in a dm room name. Any failure is a bad_request *Error whose
// message does not echo the id.
func ValidUser(id string) error {
	if id == "" {
		return Errorf(CodeBadRequest, "user id is empty")
	}
	if len(id) > MaxUserLen {
		return Errorf(CodeBadRequest, "user id longer than %d bytes", MaxUserLen)
	}
	if !validName(id) {
		return Errorf(CodeBadRequest, "user id has a space, control, format or invisible character")
	}
	return nil
}

// NameRune reports whether r may appear in a room name or a user id. It
// must be printable by unicode.IsPrint (a letter, mark, number,
// punctuation or symbol assigned in Go's Unicode tables), so control (Cc),
// format (Cf: zero-width space and joiners, U+FEFF, U+2060, soft hyphen,
// tag characters), private-use, surrogate, unassigned and every space
// rune are refused, as is U+FFFD, the mark of a decoding error. It must also not be a bidi control (U+061C,
// U+200E-U+200F, U+202A-U+202E, U+2066-U+2069; all Cf) nor another default
// ignorable rune such as U+034F or the Hangul fillers (U+115F, U+1160,
// U+3164, U+FFA0), which render as nothing. Variation selectors stay
// allowed: emoji need them.
//
// Message text does not follow these rules; see CleanText.
func NameRune(r rune) bool {
	return r != ' ' && r != utf8.RuneError && unicode.IsPrint(r) &&
		!unicode.In(r, unicode.Cf, unicode.Bidi_Control, unicode.Other_Default_Ignorable_Code_Point)
}

// validName reports whether s is valid UTF-8 made only of name runes.
func validName(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !NameRune(r) {
			return false
		}
	}
	return true
}
