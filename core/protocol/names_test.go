package protocol

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// refusedInNames lists runes that look like nothing, or reorder what
// follows them, and so must never be part of a room name or user id.
var refusedInNames = map[string]rune{
	"zero-width space":      '\u200b',
	"zero-width non-joiner": '\u200c',
	"zero-width joiner":     '\u200d',
	"left-to-right mark":    '\u200e',
	"right-to-left mark":    '\u200f',
	"LRE":                   '\u202a',
	"RLE":                   '\u202b',
	"PDF":                   '\u202c',
	"LRO":                   '\u202d',
	"RLO":                   '\u202e',
	"word joiner":           '\u2060',
	"LRI":                   '\u2066',
	"RLI":                   '\u2067',
	"FSI":                   '\u2068',
	"PDI":                   '\u2069',
	"arabic letter mark":    '\u061c',
	"BOM":                   '\ufeff',
	"soft hyphen":           '\u00ad',
	"mongolian vs":          '\u180e',
	"tag letter":            '\U000e0067',
	"hangul filler":         '\u3164',
	"hangul choseong fill":  '\u115f',
	"halfwidth filler":      '\uffa0',
	"grapheme joiner":       '\u034f',
	"NUL":                   0,
	"newline":               '\n',
	"DEL":                   0x7f,
	"NEL":                   0x85,
	"space":                 ' ',
	"no-break space":        '\u00a0',
	"ideographic space":     '\u3000',
	"line separator":        '\u2028',
	"private use":           '\ue000',
	"plane 15 private use":  '\U000f0080',
	"unassigned":            '\u0378',
	"replacement char":      utf8.RuneError,
}

func TestValidRoomRefusesInvisibleRunes(t *testing.T) {
	for name, r := range refusedInNames {
		for _, room := range []string{"gen" + string(r) + "eral", string(r) + "general", "general" + string(r)} {
			if err := ValidRoom(room); err == nil {
				t.Errorf("%s: ValidRoom(%+q) = nil, want bad_request", name, room)
			} else if c, _ := CodeOf(err); c != CodeBadRequest {
				t.Errorf("%s: ValidRoom(%+q) code %s, want bad_request", name, room, c)
			}
			if err := ValidUser(room); err == nil {
				t.Errorf("%s: ValidUser(%+q) = nil, want bad_request", name, room)
			}
		}
	}
}

func TestValidRoomDecodedFrames(t *testing.T) {
	for _, frame := range []string{
		`{"type":"join","room":"gen\u200beral"}`,
		`{"type":"join","room":"\u202egeneral"}`,
		`{"type":"send","room":"\u2066x\u2069","id":"1","text":"hi"}`,
		`{"type":"read","room":"\ufeffgeneral","seq":1}`,
	} {
		_, err := DecodeClient([]byte(frame))
		if c, _ := CodeOf(err); err == nil || c != CodeBadRequest {
			t.Errorf("DecodeClient(%s) = %v, want bad_request", frame, err)
		}
	}
}

func TestValidNamesAccept(t *testing.T) {
	for _, s := range []string{
		"general", "dm:alice:bob", "é", "Zoë", "日本語", "команда", "عربي", "עברית",
		"café-au-lait_2", "☕\ufe0f", "🎉", "a.b~c!", strings.Repeat("r", MaxRoomLen),
	} {
		if err := ValidRoom(s); err != nil {
			t.Errorf("ValidRoom(%+q) = %v", s, err)
		}
		if err := ValidUser(s); err != nil {
			t.Errorf("ValidUser(%+q) = %v", s, err)
		}
	}
	for _, s := range []string{"auth0|5f7c8ec7", "a,b", "a*", "org:amy", "alice@example.com", strings.Repeat("u", MaxUserLen)} {
		if err := ValidUser(s); err != nil {
			t.Errorf("ValidUser(%+q) = %v", s, err)
		}
	}
}

func TestValidNamesRefuse(t *testing.T) {
	for _, s := range []string{"", "a b", "a,b", "x*", "\xff", "a\xc3", strings.Repeat("r", MaxRoomLen+1)} {
		if err := ValidRoom(s); err == nil {
			t.Errorf("ValidRoom(%+q) = nil", s)
		}
	}
	for _, s := range []string{"", "a b", "\xff", "alice\x00", "alice\n", "\u202ealice", strings.Repeat("u", MaxUserLen+1)} {
		err := ValidUser(s)
		if c, _ := CodeOf(err); err == nil || c != CodeBadRequest {
			t.Errorf("ValidUser(%+q) = %v, want bad_request", s, err)
		}
	}
}

// TestCleanTextKeepsFormatCharacters pins that text is not held to the
// name rules: emoji sequences and bidi marks survive unchanged.
func TestCleanTextKeepsFormatCharacters(t *testing.T) {
	for _, s := range []string{
		"👩\u200d💻",               // woman technologist: ZWJ sequence
		"👨\u200d👩\u200d👧\u200d👦", // family
		"🏴\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f", // flag of England: tag characters
		"❤\ufe0f",                 // variation selector
		"שלום \u200fworld",        // right-to-left mark
		"a\u200bb\u2060c\u00add",  // zero-width space, word joiner, soft hyphen
		"\u2067مرحبا\u2069 hello", // isolates
	} {
		got, err := CleanText(s, 100)
		if err != nil || got != s {
			t.Errorf("CleanText(%+q) = %+q, %v; want it unchanged", s, got, err)
		}
	}
}

// checkName fails unless s, accepted as a name by the rules limited to
// max bytes, satisfies them rune by rune.
func checkName(t *testing.T, s string, max int) {
	t.Helper()
	if s == "" || len(s) > max || !utf8.ValidString(s) {
		t.Fatalf("accepted %+q: empty, too long or invalid UTF-8", s)
	}
	for _, r := range s {
		if unicode.IsSpace(r) || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) ||
			unicode.Is(unicode.Bidi_Control, r) || !unicode.IsPrint(r) || r == utf8.RuneError {
			t.Fatalf("accepted %+q with rune %U", s, r)
		}
	}
}

func FuzzValidRoom(f *testing.F) {
	for _, s := range []string{"general", "dm:a:b", "gen\u200beral", "\u202egeneral", "a,b", "x*", "é", "\xff", "☕\ufe0f"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := ValidRoom(s)
		if err != nil {
			if c, _ := CodeOf(err); c != CodeBadRequest {
				t.Fatalf("code %s, want bad_request", c)
			}
			return
		}
		checkName(t, s, MaxRoomLen)
		if strings.ContainsAny(s, ",*") {
			t.Fatalf("accepted %+q with a comma or asterisk", s)
		}
		// A room name survives a cursor round trip and a frame round trip.
		c, err := ParseCursor(Cursor{s: 1}.Encode())
		if err != nil || c[s] != 1 {
			t.Fatalf("cursor round trip of %+q: %v, %v", s, c, err)
		}
		e, err := DecodeClient(Encode(Envelope{Type: TypeJoin, Room: s}))
		if err != nil || e.Room != s {
			t.Fatalf("frame round trip of %+q: %+q, %v", s, e.Room, err)
		}
	})
}

func FuzzValidUser(f *testing.F) {
	for _, s := range []string{"alice", "org:amy", "auth0|1", "a\x00", "a\nb", "\u202ealice", "a b", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := ValidUser(s)
		if err != nil {
			if c, _ := CodeOf(err); c != CodeBadRequest {
				t.Fatalf("code %s, want bad_request", c)
			}
			return
		}
		checkName(t, s, MaxUserLen)
		// The two rules agree: a user id with no comma or asterisk that
		// fits in MaxRoomLen is a room name too.
		if ValidRoom(s) != nil && !strings.ContainsAny(s, ",*") && len(s) <= MaxRoomLen {
			t.Fatalf("%+q is a user id but not a room name", s)
		}
	})
}

func FuzzCleanText(f *testing.F) {
	for _, s := range []string{"hello", "👩\u200d💻", "a\x00b\x1bc\nd\te\u0085", " \x01 ", "\xff", "שלום\u200f", strings.Repeat("é", 11)} {
		f.Add(s, 10)
	}
	f.Fuzz(func(t *testing.T, s string, max int) {
		if max > 1<<16 {
			max = 1 << 16
		}
		out, err := CleanText(s, max)
		if err != nil {
			if c, _ := CodeOf(err); c != CodeBadRequest && c != CodeTooLarge {
				t.Fatalf("code %s, want bad_request or too_large", c)
			}
			return
		}
		if !utf8.ValidString(out) || strings.TrimSpace(out) == "" || utf8.RuneCountInString(out) > max {
			t.Fatalf("CleanText(%+q, %d) = %+q: invalid, blank or too long", s, max, out)
		}
		// Exactly the controls other than newline and tab are removed:
		// format characters and everything else are kept, in order.
		var want strings.Builder
		for _, r := range s {
			if r == '\n' || r == '\t' || !unicode.IsControl(r) {
				want.WriteRune(r)
			}
		}
		if out != want.String() {
			t.Fatalf("CleanText(%+q) = %+q, want %+q", s, out, want.String())
		}
		if again, err := CleanText(out, max); err != nil || again != out {
			t.Fatalf("CleanText is not idempotent on %+q: %+q, %v", out, again, err)
		}
	})
}
