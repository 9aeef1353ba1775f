package bolt

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/chatd/chatd/core/protocol"
)

func TestCodecRoundTrip(t *testing.T) {
	for _, m := range []protocol.Message{
		{Room: "r", Seq: 1, ID: "id", From: "ann", Name: "Ann", Text: "hi", TS: 1767323045000},
		{Room: "r", Seq: 1 << 40, TS: -5},
		{Room: "r", Seq: 2, ID: "x", Text: strings.Repeat("é", 4096)},
	} {
		b := encodeMessage(nil, m)
		if len(b) > recordSize(m) {
			t.Fatalf("record of %d bytes beyond recordSize %d", len(b), recordSize(m))
		}
		got, err := decodeMessage(b, m.Room, m.Seq)
		if err != nil || !got.Equal(m) {
			t.Fatalf("round trip: %+v, %v; want %+v", got, err, m)
		}
		ts, err := decodeTS(b, m.Room, m.Seq)
		if err != nil || ts != m.TS {
			t.Fatalf("decodeTS = %d, %v; want %d", ts, err, m.TS)
		}
		id, err := decodeID(b, m.Room, m.Seq)
		if err != nil || string(id) != m.ID {
			t.Fatalf("decodeID = %q, %v; want %q", id, err, m.ID)
		}
	}
}

func TestCodecCorrupt(t *testing.T) {
	good := encodeMessage(nil, protocol.Message{ID: "id", Text: "text", TS: 9})
	for name, b := range map[string][]byte{
		"empty":     nil,
		"version":   append([]byte{9}, good[1:]...),
		"truncated": good[:len(good)-1],
		"trailing":  append(append([]byte(nil), good...), 0),
		"length":    {recordVersion, 2, 0xff, 0xff, 0x7f},
	} {
		if _, err := decodeMessage(b, "r", 1); !errors.Is(err, errCorrupt) {
			t.Errorf("%s: %v, want errCorrupt", name, err)
		}
	}
}

// FuzzDecode checks that no input panics the decoder and that whatever
// decodes re-encodes to the same bytes.
func FuzzDecode(f *testing.F) {
	f.Add(encodeMessage(nil, protocol.Message{ID: "id", From: "f", Name: "n", Text: "t", TS: 1}))
	f.Add([]byte{recordVersion})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMessage(b, "r", 1)
		decodeTS(b, "r", 1)
		decodeID(b, "r", 1)
		if err != nil {
			return
		}
		if again := encodeMessage(nil, m); string(again) != string(b) {
			// Varints have one canonical form on encode but decode
			// accepts padded ones; only the message must survive.
			if m2, err := decodeMessage(again, "r", 1); err != nil || !m2.Equal(m) {
				t.Fatalf("re-encode changed %+v into %+v, %v", m, m2, err)
			}
		}
	})
}

// BenchmarkCodec compares the record encoding with encoding/json for a
// typical 200-byte message.
func BenchmarkCodec(b *testing.B) {
	m := protocol.Message{Room: "general", Seq: 12345, ID: "0b6f3c1e-7d7a-4d2e-9b1f-5a3c2e1d0f9a",
		From: "user-42", Name: "Alice", Text: strings.Repeat("x", 200), TS: 1767323045000}
	b.Run("binary", func(b *testing.B) {
		for b.Loop() {
			rec := encodeMessage(make([]byte, 0, recordSize(m)), m)
			if _, err := decodeMessage(rec, m.Room, m.Seq); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(encodeMessage(nil, m))), "bytes/record")
	})
	b.Run("json", func(b *testing.B) {
		for b.Loop() {
			rec, _ := json.Marshal(m)
			var got protocol.Message
			if err := json.Unmarshal(rec, &got); err != nil {
				b.Fatal(err)
			}
		}
		rec, _ := json.Marshal(m)
		b.ReportMetric(float64(len(rec)), "bytes/record")
	})
}
