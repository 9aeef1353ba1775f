package redis

import (
	"strconv"
	"testing"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/protocol"
)

func TestCodecRoundTrip(t *testing.T) {
	m := protocol.Message{Room: "r", Seq: 7, ID: "id-1", From: "ann", Name: "Ann \"A\" <x>", Text: "héllo\n\u2028", TS: 1767323045123}
	p, err := decodePublication("r", "m7 "+encodeRecord(m))
	if err != nil || p.kind != kindMessage || !p.msg.Equal(m) {
		t.Fatalf("message: %+v, %v; want %+v", p.msg, err, m)
	}
	env := protocol.Envelope{Type: protocol.TypeTyping, Room: "r", User: "ann", Name: "Ann"}
	payload, _ := encodeEphemeral(env)
	if p, err := decodePublication("r", payload); err != nil || p.kind != kindEphemeral || p.env.User != "ann" || p.env.Type != env.Type {
		t.Fatalf("ephemeral: %+v, %v", p.env, err)
	}
	c := core.Control{Topic: "level", Data: []byte(`{"level":2}`)}
	payload, _ = encodeControl(c)
	if p, err := decodePublication("", payload); err != nil || p.kind != kindControl || p.ctl.Topic != "level" || string(p.ctl.Data) != string(c.Data) {
		t.Fatalf("control: %+v, %v", p.ctl, err)
	}
}

// FuzzDecode: decoding a publication or a stored record never panics,
// and what decodes as a message encodes back to the same message.
func FuzzDecode(f *testing.F) {
	m := protocol.Message{ID: "id", From: "u", Name: "U", Text: "hi", TS: 1}
	for _, seed := range []string{
		"m1 " + encodeRecord(m), "m18446744073709551615 {}", "m0 {}", "m1", "m 1 {}", "m-1 {\"i\":\"x\"}",
		`e{"type":"typing","room":"r","user":"u"}`, `e[]`, `c{"topic":"level","data":"e30="}`, `c{"data":5}`,
		"", "x", "m1 {\"i\":\"\\ud800\"}", "m1 null", "m1 {\"s\":1e400}",
	} {
		f.Add("room", seed)
	}
	f.Fuzz(func(t *testing.T, room, payload string) {
		_, _ = decodeRecord(payload, room, 1) // a stored record, as read back: must not panic
		p, err := decodePublication(room, payload)
		if err != nil || p.kind != kindMessage {
			return
		}
		again, err := decodePublication(room, "m"+strconv.FormatUint(p.msg.Seq, 10)+" "+encodeRecord(p.msg))
		if err != nil || !again.msg.Equal(p.msg) {
			t.Fatalf("re-encoded %+v decodes as %+v, %v", p.msg, again.msg, err)
		}
	})
}
