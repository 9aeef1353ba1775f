package files

import (
	"strings"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/chatd/chatd/core/protocol"
)

// MaxNameLen bounds a file name, in bytes, as most file systems do.
const MaxNameLen = 255

// CleanName turns the name a client gave a file into one that is safe to
// store, show and offer for download. It keeps only the last path element
// (after any '/' or '\'), normalises to NFC, turns invalid UTF-8 and every
// rune that is not a name rune (see protocol.NameRune: controls, format
// and bidi controls, invisible runes) into '_', except that white space
// runs become one space; it trims spaces and dots from both ends and cuts
// the result to MaxNameLen bytes, keeping a short extension. A name left
// empty is "file".
func CleanName(name string) string {
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	if len(name) > 4*MaxNameLen { // bound the work; the cut below decides the rest
		name = name[len(name)-4*MaxNameLen:]
	}
	name = strings.ToValidUTF8(name, "_")
	name = norm.NFC.String(name)
	var b strings.Builder
	space := false
	for _, r := range name {
		switch {
		case r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\u00a0' || r == '\u3000':
			space = true
			continue
		case r == ':' || r == '"' || !protocol.NameRune(r):
			r = '_'
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		b.WriteRune(r)
	}
	name = strings.Trim(b.String(), " .")
	name = cutName(name, MaxNameLen)
	if name == "" {
		return "file"
	}
	return name
}

// cutName cuts name to at most max bytes on a rune boundary, keeping an
// extension of up to 16 bytes.
func cutName(name string, max int) string {
	if len(name) <= max {
		return name
	}
	ext := ""
	if i := strings.LastIndexByte(name, '.'); i > 0 && len(name)-i <= 16 {
		name, ext = name[:i], name[i:]
	}
	n := max - len(ext)
	for n > 0 && !utf8.RuneStart(name[n]) {
		n--
	}
	return strings.Trim(name[:n], " .") + ext
}
