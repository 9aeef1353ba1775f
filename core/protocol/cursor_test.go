package protocol

import (
	"maps"
	"testing"
)

func TestCursorRoundTrip(t *testing.T) {
	for _, c := range []Cursor{{}, {"general": 0}, {"general": 41, "dm:alice:bob": 1 << 40, "é": 7}} {
		s := c.Encode()
		got, err := ParseCursor(s)
		if err != nil || !maps.Equal(got, c) {
			t.Fatalf("ParseCursor(%q) = %v, %v; want %v", s, got, err, c)
		}
	}
}

func TestCursorRejectsDamage(t *testing.T) {
	s := Cursor{"general": 41, "random": 9}.Encode()
	cases := []string{"", "!!", "AA", s[:len(s)-1], s + "A", "x" + s[1:]}
	for i := range s {
		b := []byte(s)
		b[i] ^= 0x01
		cases = append(cases, string(b))
	}
	for _, bad := range cases {
		got, err := ParseCursor(bad)
		if bad == s {
			continue
		}
		if err == nil {
			// A flipped bit in the base64 padding area can decode to the same
			// bytes; that is the same cursor, not a forged one.
			if maps.Equal(got, Cursor{"general": 41, "random": 9}) {
				continue
			}
			t.Fatalf("ParseCursor(%q) accepted damaged cursor: %v", bad, got)
		}
		if c, _ := CodeOf(err); c != CodeBadRequest {
			t.Fatalf("code %s, want bad_request", c)
		}
	}
}

func FuzzParseCursor(f *testing.F) {
	f.Add(Cursor{"general": 41}.Encode())
	f.Add("")
	f.Add("AQdnZW5lcmFsKQ")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCursor(s)
		if err != nil {
			return
		}
		again, err := ParseCursor(c.Encode())
		if err != nil || !maps.Equal(again, c) {
			t.Fatalf("round trip of %v: %v, %v", c, again, err)
		}
	})
}
