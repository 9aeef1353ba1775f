package protocol

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

func TestCleanDisplayNameAccepts(t *testing.T) {
	for in, want := range map[string]string{
		"Zoë Smith":                     "Zoë Smith",
		"Zoe\u0308 Smith":               "Zoë Smith", // decomposed: NFC composes it
		"  Alice Smith \t":              "Alice Smith",
		"山田\u3000太郎":                    "山田\u3000太郎", // ideographic space inside
		"عربي":                          "عربي",
		"👩\ufe0f":                       "👩\ufe0f",
		"a.b~c!":                        "a.b~c!",
		strings.Repeat("é", 64):         strings.Repeat("é", 64),
		strings.Repeat("e\u0301", 64):   strings.Repeat("é", 64), // 128 runes in, 64 after NFC
		"Renée\u00a0O'Brien":            "Renée\u00a0O'Brien",
		strings.Repeat("x", 64) + "   ": strings.Repeat("x", 64),
	} {
		got, err := CleanDisplayName(in)
		if err != nil || got != want {
			t.Errorf("CleanDisplayName(%+q) = %+q, %v; want %+q", in, got, err, want)
		}
	}
}

func TestCleanDisplayNameRefuses(t *testing.T) {
	refused := []string{"", "   ", "\t\n", "\xff", "a\xc3", strings.Repeat("x", 65), strings.Repeat("x", 2000),
		"Alice\nSmith", "Alice\x00", "Alice\u2028Smith"}
	for _, r := range refusedInNames {
		switch {
		case unicode.Is(unicode.Zs, r):
			continue // space separators are allowed inside a display name
		case unicode.IsSpace(r):
			refused = append(refused, "Ali"+string(r)+"ce") // at either end it is trimmed
		default:
			refused = append(refused, "Ali"+string(r)+"ce", string(r)+"Alice")
		}
	}
	for _, in := range refused {
		got, err := CleanDisplayName(in)
		if c, _ := CodeOf(err); err == nil || c != CodeBadRequest {
			t.Errorf("CleanDisplayName(%+q) = %+q, %v; want bad_request", in, got, err)
		}
		if err != nil && in != "" && strings.Contains(err.Error(), in) {
			t.Errorf("CleanDisplayName(%+q): the error echoes the name: %v", in, err)
		}
	}
}

// The user's stream is "~"; no room name may start with '~', so a cursor
// key "~" and a join of "~" can never mean a real room.
func TestUserRoomReserved(t *testing.T) {
	for _, room := range []string{"~", "~alice", "~~"} {
		if err := ValidRoom(room); err == nil {
			t.Errorf("ValidRoom(%q) = nil, want bad_request", room)
		}
	}
	if _, err := DecodeClient([]byte(`{"type":"join","room":"~","since":3}`)); err != nil {
		t.Errorf("join of ~: %v", err)
	}
	for _, frame := range []string{
		`{"type":"join","room":"~alice"}`,
		`{"type":"leave","room":"~"}`,
		`{"type":"send","room":"~","id":"1","text":"hi"}`,
		`{"type":"read","room":"~","seq":1}`,
		`{"type":"typing","room":"~"}`,
	} {
		if _, err := DecodeClient([]byte(frame)); err == nil {
			t.Errorf("DecodeClient(%s) = nil, want bad_request", frame)
		}
	}
	cur, err := ParseCursor(Cursor{UserRoom: 7, "general": 3}.Encode())
	if err != nil || cur[UserRoom] != 7 || cur["general"] != 3 {
		t.Errorf("cursor with ~: %v, %v", cur, err)
	}
	if _, err := ParseCursor(Cursor{"~x": 1}.Encode()); err == nil {
		t.Error("a cursor naming ~x parsed")
	}
}

func FuzzCleanDisplayName(f *testing.F) {
	for _, s := range []string{"Zoë Smith", "Zoe\u0308", " a ", "\u202eevil", "a\u200bb", "山田\u3000太郎", "\xff", strings.Repeat("e\u0301", 70)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := CleanDisplayName(s)
		if err != nil {
			if c, _ := CodeOf(err); c != CodeBadRequest {
				t.Fatalf("code %s, want bad_request", c)
			}
			return
		}
		if n := utf8.RuneCountInString(got); n < 1 || n > MaxDisplayName {
			t.Fatalf("%+q: %d characters", got, n)
		}
		if !norm.NFC.IsNormalString(got) || strings.TrimSpace(got) != got {
			t.Fatalf("%+q is not NFC and trimmed", got)
		}
		for _, r := range got {
			if !DisplayRune(r) {
				t.Fatalf("%+q holds %U", got, r)
			}
		}
		if again, err := CleanDisplayName(got); err != nil || again != got {
			t.Fatalf("not idempotent: %+q -> %+q, %v", got, again, err)
		}
	})
}
