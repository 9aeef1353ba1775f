package redis

import (
	"errors"
	"strconv"
	"testing"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/protocol"
)

func TestCodecRoundTrip(t *testing.T) {
	files := []protocol.File{{ID: "f1", Name: "a \"b\".png", Size: 1 << 40, Type: "image/png", URL: "/v1/files/f1", Width: 3, Height: 4}}
	for _, m := range []protocol.Message{
		{Room: "r", Seq: 7, ID: "id-1", From: "ann", Name: "Ann \"A\" <x>", Text: "héllo\n\u2028", TS: 1767323045123},
		{Room: "r", Seq: 7, ID: "id-1", From: "ann", TS: 1, Files: files},
		{Room: "r", Seq: 7, ID: "e", From: "ann", Text: "x", TS: 1, Kind: protocol.TypeEdit, Target: 3},
		{Room: "r", Seq: 7, ID: "d", From: "ann", TS: 1, Kind: protocol.TypeDelete, Target: 1 << 50},
	} {
		p, err := decodePublication("r", "m7 "+encodeRecord(m))
		if err != nil || p.kind != kindMessage || !p.msg.Equal(m) {
			t.Fatalf("message: %+v, %v; want %+v", p.msg, err, m)
		}
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
		"m1 " + encodeRecord(protocol.Message{ID: "e", Kind: protocol.TypeEdit, Target: 1, Files: []protocol.File{{ID: "f", URL: "/u"}}}),
		`{"t":"x","e":1,"x":[1,2]}`, `{"d":true}`, `{"t":null,"x":[-1]}`,
		`m1 {"i":"x","k":"nope"}`, `m1 {"i":"x","a":["f",{"id":"g"},3]}`, `m1 {"i":"x","g":-1}`,
	} {
		f.Add("room", seed)
	}
	f.Fuzz(func(t *testing.T, room, payload string) {
		_, _ = decodeRecord(payload, room, 1) // a stored record, as read back: must not panic
		_, _ = applyState(protocol.Message{Room: room, Seq: 1, ID: "x"}, payload)
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

// applyState gives a message its current text, or deletes it and its
// edits; no state leaves an entry as stored; a bad state is corrupt.
func TestApplyState(t *testing.T) {
	m := protocol.Message{Room: "r", Seq: 2, ID: "a", From: "ann", Text: "old", TS: 5,
		Files: []protocol.File{{ID: "f", Name: "n", Type: "t", URL: "/u"}}}
	edit := protocol.Message{Room: "r", Seq: 3, ID: "e", From: "ann", Text: "new", TS: 6, Kind: protocol.TypeEdit, Target: 2}
	for _, c := range []struct {
		in    protocol.Message
		state any
		want  protocol.Message
	}{
		{m, nil, m},
		{m, `{"t":"new","e":6,"x":[3]}`, func() protocol.Message { w := m; w.Text, w.Edited = "new", 6; return w }()},
		{m, `{"d":true}`, m.Redacted()},
		{edit, `{"d":true}`, edit.Redacted()},
		{edit, `{"t":"ignored","e":9}`, edit},
	} {
		got, err := applyState(c.in, c.state)
		if err != nil || !got.Equal(c.want) {
			t.Errorf("applyState(%+v, %v) = %+v, %v; want %+v", c.in, c.state, got, err, c.want)
		}
	}
	if _, err := applyState(m, `{"t":`); !errors.Is(err, errCorrupt) {
		t.Fatalf("bad state: %v, want errCorrupt", err)
	}
}
