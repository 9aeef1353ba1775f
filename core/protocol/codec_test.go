package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestDecodeClient(t *testing.T) {
	good := []string{
		`{"type":"join","room":"general","since":41}`,
		`{"type":"join","room":"dm:alice:bob"}`,
		`{"type":"leave","room":"general"}`,
		`{"type":"send","room":"general","id":"u-1","text":"hello"}`,
		`{"type":"read","room":"general","seq":42}`,
		`{"type":"typing","room":"general"}`,
		`{"type":"ping"}`,
		`{"type":"refresh","token":"abc"}`,
		` {"type":"ping","extra":1} `,
	}
	for _, s := range good {
		if _, err := DecodeClient([]byte(s)); err != nil {
			t.Errorf("DecodeClient(%s) = %v, want nil", s, err)
		}
	}
	bad := []string{
		``, `null`, `[]`, `"x"`, `{`, `{"type":1}`, `{}`, `{"type":"nope"}`,
		`{"type":"join"}`, `{"type":"join","room":"a,b"}`, `{"type":"join","room":"a b"}`,
		`{"type":"join","room":"x*"}`, `{"type":"join","room":"g","since":-1}`,
		`{"type":"send","room":"g","text":"x"}`, `{"type":"send","room":"g","id":"a b","text":"x"}`,
		`{"type":"read","room":"g"}`, `{"type":"refresh"}`,
		"{\"type\":\"ping\",\"x\":\"\xff\"}",
		`{"type":"join","room":"` + strings.Repeat("r", MaxRoomLen+1) + `"}`,
	}
	for _, s := range bad {
		_, err := DecodeClient([]byte(s))
		var pe *Error
		if !errors.As(err, &pe) || pe.Code != CodeBadRequest {
			t.Errorf("DecodeClient(%q) = %v, want bad_request", s, err)
		}
	}
}

func TestCleanText(t *testing.T) {
	got, err := CleanText("a\x00b\x1bc\nd\te\u0085", 10)
	if err != nil || got != "abc\nd\te" {
		t.Fatalf("CleanText = %q, %v", got, err)
	}
	if _, err := CleanText("\xff", 10); err == nil {
		t.Fatal("invalid UTF-8 accepted")
	}
	if _, err := CleanText(" \x01 ", 10); err == nil {
		t.Fatal("empty text accepted")
	}
	_, err = CleanText(strings.Repeat("é", 11), 10)
	if c, _ := CodeOf(err); c != CodeTooLarge {
		t.Fatalf("over-long text: %v", err)
	}
	if _, err := CleanText(strings.Repeat("é", 10), 10); err != nil {
		t.Fatalf("10 runes rejected: %v", err)
	}
}

func TestEncodeKeepsZeroes(t *testing.T) {
	b := Encode(Envelope{Type: TypeJoined, Room: "g", Head: Ptr(uint64(0)), Recovered: Ptr(false)})
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m["head"] != 0.0 || m["recovered"] != false {
		t.Fatalf("zero fields dropped: %s", b)
	}
}

func FuzzDecodeClient(f *testing.F) {
	for _, s := range []string{
		`{"type":"join","room":"general","since":41}`,
		`{"type":"send","room":"general","id":"x","text":"hello"}`,
		`{"type":"read","room":"general","seq":42}`,
		`{"type":"refresh","token":"t"}`, `{"type":"ping"}`, `[{"type":"ping"}]`,
		`{"type":"send","room":"g","id":"x","text":"","files":["f1","f2"]}`,
		`{"type":"send","room":"g","id":"x","files":[{"id":"f1","name":"a.png","size":3,"type":"image/png","url":"/f"}]}`,
		`{"type":"send","room":"g","id":"x","files":["f","f"]}`, `{"type":"send","room":"g","id":"x","files":[1,null,{}]}`,
		`{"type":"edit","room":"general","id":"e1","seq":4,"text":"fixed"}`,
		`{"type":"delete","room":"general","id":"d1","seq":4}`, `{"type":"delete","room":"g","id":"d","seq":0}`,
		`{"type":"read","room":"general","seq":42,"rtt_ms":12}`, `{"type":"ping","rtt_ms":1.5}`, `{"type":"ping","rtt_ms":-1}`,
		`{"type":"join","room":"\u0000"}`, "{\"type\":\"send\",\"text\":\"\xc3\"}", `{"since":1e400}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// The fast path decodes exactly as encoding/json does.
		var fast, slow Envelope
		fastErr, slowErr := decodeObject(data, &fast), json.Unmarshal(data, &slow)
		if (fastErr == nil) != (slowErr == nil) {
			t.Fatalf("%q: decodeObject gives %v, encoding/json %v", data, fastErr, slowErr)
		}
		if fastErr == nil && !reflect.DeepEqual(fast, slow) {
			t.Fatalf("%q: decodeObject gives\n%s\nencoding/json\n%s", data, show(fast), show(slow))
		}
		e, err := DecodeClient(data)
		if err != nil {
			if c, _ := CodeOf(err); c != CodeBadRequest {
				t.Fatalf("error code %s, want bad_request", c)
			}
			return
		}
		if err := ValidateClient(&e); err != nil {
			t.Fatalf("decoded envelope fails validation: %v", err)
		}
		// A decoded envelope must survive a round trip.
		if _, err := DecodeClient(Encode(e)); err != nil {
			t.Fatalf("round trip: %v", err)
		}
	})
}

// The envelopes clients send most take the fast path.
func TestClientFramesTakeTheFastPath(t *testing.T) {
	for _, s := range []string{
		`{"type":"join","room":"general","since":41,"ref":"j1"}`,
		`{"type":"send","room":"general","id":"7f1c-22","text":"hello there","ref":"7f1c-22","rtt_ms":12}`,
		`{"type":"read","room":"general","seq":42,"ref":"r9"}`,
		`{"type":"typing","room":"general"}`, `{"type":"ping"}`, `{"type":"pong"}`, `{"type":"leave","room":"general"}`,
		`{"type":"edit","room":"general","id":"e1","seq":4,"text":"fixed"}`,
	} {
		p := fastParser{b: []byte(s)}
		var e Envelope
		if !p.envelope(&e) || !p.end() {
			t.Errorf("the fast path refused %s", s)
		}
	}
}

// BenchmarkDecodeClient decodes the frames a chat page sends most: a
// send and a read.
func BenchmarkDecodeClient(b *testing.B) {
	for name, frame := range map[string]string{
		"send": `{"type":"send","room":"load-17","id":"0f8e2c1d-7a4b-4c59-9d0e-3b2a1f6c8e7d","text":"t=1796188044453000000 u00001 #7 ...............................................","ref":"0f8e2c1d-7a4b-4c59-9d0e-3b2a1f6c8e7d"}`,
		"read": `{"type":"read","room":"load-17","seq":4211,"ref":"r-88"}`,
	} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := DecodeClient([]byte(frame)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// FuzzEncodeJoined is differential: EncodeJoined writes what Encode
// writes for the same joined envelope, whatever its strings hold.
func FuzzEncodeJoined(f *testing.F) {
	f.Add("", "general", uint64(0), true)
	f.Add("j1", "dm:alice:bob", uint64(18446744073709551615), false)
	f.Add("<&>", "~", uint64(7), true)
	f.Add("a\"b\\c", "r\x00\x7f", uint64(1), false)
	f.Add("zoë", "\u2028", uint64(42), true)
	f.Add("\xff", "", uint64(3), false)
	f.Fuzz(func(t *testing.T, ref, room string, head uint64, recovered bool) {
		got := EncodeJoined(ref, room, head, recovered)
		want := Encode(Envelope{Type: TypeJoined, Ref: ref, Room: room, Head: &head, Recovered: &recovered})
		if !bytes.Equal(got, want) {
			t.Fatalf("EncodeJoined(%q, %q, %d, %v) = %s, Encode gives %s", ref, room, head, recovered, got, want)
		}
	})
}

// A joined envelope of plain strings is written directly: its bytes are
// the one allocation.
func TestEncodeJoinedAllocations(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() { EncodeJoined("j1", "general", 12345, true) }); n != 1 {
		t.Fatalf("%v allocations, want 1", n)
	}
}
