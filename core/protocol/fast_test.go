package protocol

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
)

// greetingFrame is a WebSocket session's first frame after a dial that
// joins in its query: the offer and a joined reply.
const greetingFrame = `[{"type":"control","level":0,"transports":["websocket","sse","poll"],"features":{"files":true,"presence":true,"read_receipts":true,"typing":true},"poll_interval_ms":5000},{"type":"joined","room":"r","head":3,"recovered":true}]`

// fastSeeds are frames as the server writes them, and near misses.
var fastSeeds = []string{
	`{"type":"message","room":"lobby","seq":42,"id":"7f1c","from":"alice","name":"Alice","text":"hello","ts":1796188044453}`,
	`{"type":"edit","room":"r","seq":5,"id":"e1","from":"alice","name":"Alice","text":"fixed","ts":1796188044453,"target":3}`,
	`{"type":"message","room":"r","seq":3,"id":"m","from":"alice","name":"Alice","ts":1,"deleted":true}`,
	`[{"type":"delete","room":"r","seq":6,"id":"d","from":"a","ts":2,"target":3},{"type":"message","room":"r","seq":4,"id":"x","text":"t","ts":1,"edited":1796188044453}]`,
	`[{"type":"ack","ref":"a2","id":"a2","room":"r","seq":2,"ts":1},{"type":"message","room":"r","seq":2,"id":"a2","text":"hi"}]`,
	`{"type":"joined","room":"r","head":0,"recovered":true,"ref":"join-1"}`,
	`{"type":"presence","room":"r","user":"u1","name":"Zoë","online":false}`,
	`{"type":"receipt","room":"r","user":"u1","seq":18446744073709551615}`,
	`[{"type":"receipt","room":"r","reads":{"u1":3,"zoë":18446744073709551615}},{"type":"presence","room":"r","count":2}]`,
	`{"type":"presence","room":"r","count":0}`,
	`{"type":"presence","room":"r","changes":[{"user":"u1","name":"Zoë","online":true},{"user":"u2","online":false}]}`,
	`{"type":"control","level":2,"transports":["sse","poll"],"features":{"typing":false},"poll_interval_ms":5000}`,
	`{"type":"disconnect","close_code":4001,"reason":"move","reconnect_ms":250}`,
	`{"type":"error","code":"forbidden","message":"no","ref":"join-2"}`,
	` [ ] `, `[]`, `{}`, `[{}]`, `{"seq":01}`, `{"seq":-1}`, `{"seq":1.5}`, `{"seq":1e3}`, `{"seq":18446744073709551616}`,
	`{"text":"a\"b"}`, `{"text":"\u00e9"}`, "{\"text\":\"caf\xc3\xa9\"}", "{\"text\":\"bad\xff\"}", `{"Type":"message"}`,
	`{"type":null}`, `{"online":truex}`, `{"seq":1}x`, `[{"seq":1},]`, `{"seq":1,}`, `{"ts":9223372036854775808}`,
	`{"deleted":false}`, `{"deleted":1}`, `{"target":-1}`, `{"edited":9223372036854775808}`,
	`{"type":"message","files":[{"id":"f","name":"n","size":1,"type":"t","url":"/u"}]}`,
	`{"changes":[]}`, `{"changes":null}`, `{"changes":[{}]}`, `{"changes":[{"user":"a","x":1}]}`, `{"changes":[{"user":"a"},]}`,
	`{"changes":[{"online":true,"online":false}]}`, `{"changes":[{"user":"a"}],"changes":[{"user":"b"}]}`, `{"changes":{}}`,
	`{"reads":{}}`, `{"reads":null}`, `{"reads":{"a":1,"a":2}}`, `{"reads":{"a":-1}}`, `{"reads":{"a":1},"reads":{"b":2}}`,
	`{"reads":{"a\u00e9":1}}`, `{"reads":{"a":1,}}`, `{"reads":{"a" : 1 , "b":2 }}`, `{"reads":[]}`, `{"count":-1}`, `{"count":1,"count":2}`,
	`{"close_code":9223372036854775807}`, `{"type":"a","type":"b"}`, `{"head":1,"head":2}`, "{\"text\":\"tab\there\"}",
	greetingFrame,
	`{"level":-1}`, `{"level":1,"level":2}`, `{"transports":[]}`, `{"transports":null}`, `{"transports":["a"],"transports":["b"]}`,
	`{"transports":[1]}`, `{"transports":["a",]}`, `{"transports":{}}`, `{"features":{}}`, `{"features":null}`,
	`{"features":{"a":true,"a":false}}`, `{"features":{"a":true},"features":{"b":false}}`, `{"features":{"a":1}}`,
	`{"features":{"a\u00e9":true}}`, `{"features":[]}`, `{"features":{"a":true,}}`,
}

// TestDecodeFrameFast checks that the fast path takes the server's shapes and
// agrees with encoding/json on every seed.
func TestDecodeFrameFast(t *testing.T) {
	for _, s := range fastSeeds {
		sameAsJSON(t, []byte(s))
	}
	for _, s := range append(fastSeeds[:14:14], greetingFrame) {
		if _, ok := DecodeFrameFast(nil, []byte(s)); !ok {
			t.Errorf("the fast path refused a frame the server writes: %s", s)
		}
	}
}

// FuzzDecodeFrameFast is differential: whatever the fast path accepts must
// decode the same with encoding/json.
func FuzzDecodeFrameFast(f *testing.F) {
	for _, s := range fastSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(sameAsJSON)
}

func sameAsJSON(t *testing.T, data []byte) {
	got, ok := DecodeFrameFast(nil, data)
	if !ok {
		if _, ok := DecodeFrameFastWith(nil, data, FastOptions{CountChanges: true}); ok {
			t.Fatalf("%q: counting changes took what the plain fast path refused", data)
		}
		return
	}
	sameCounted(t, data, got)
	sameChangesCounted(t, data, got)
	want, err := decodeJSON(data)
	if err != nil {
		t.Fatalf("fast path accepted %q, which encoding/json refuses: %v", data, err)
	}
	if len(got) != len(want) {
		t.Fatalf("%q: fast path gives %d envelopes, encoding/json %d", data, len(got), len(want))
	}
	for i := range got {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Fatalf("%q: envelope %d differs:\nfast %s\njson %s", data, i, show(got[i]), show(want[i]))
		}
	}
}

// sameChangesCounted checks FastOptions.CountChanges against the plain
// fast path's envelopes, plain: it takes all that plain took, and each
// envelope is plain's with as many changes, all blank, in a list that
// append cannot write into.
func sameChangesCounted(t *testing.T, data []byte, plain []Envelope) {
	got, ok := DecodeFrameFastWith(nil, data, FastOptions{CountChanges: true})
	if !ok {
		t.Fatalf("%q: counting changes refused what the plain fast path took", data)
	}
	if len(got) != len(plain) {
		t.Fatalf("%q: counting changes gives %d envelopes, the plain path %d", data, len(got), len(plain))
	}
	for i := range got {
		want := plain[i]
		if want.Changes != nil {
			c := got[i].Changes
			if c == nil || len(c) != len(want.Changes) || cap(c) != len(c) {
				t.Fatalf("%q: envelope %d has %d changes (cap %d), want %d blank", data, i, len(c), cap(c), len(want.Changes))
			}
			for _, ch := range c {
				if ch != (PresenceChange{}) {
					t.Fatalf("%q: envelope %d: a counted change is not blank: %+v", data, i, ch)
				}
			}
			want.Changes = c
		}
		if !reflect.DeepEqual(got[i], want) {
			t.Fatalf("%q: envelope %d differs:\ncounted %s\nplain   %s", data, i, show(got[i]), show(want))
		}
	}
}

// sameCounted checks FastOptions.CountReads against the plain fast path's
// envelopes, plain: it takes what plain took, except an envelope with
// both reads and count, and each envelope is plain's with Reads counted
// (at least len(Reads): a user named twice counts twice).
func sameCounted(t *testing.T, data []byte, plain []Envelope) {
	got, ok := DecodeFrameFastWith(nil, data, FastOptions{CountReads: true})
	if !ok {
		for _, e := range plain {
			if e.Reads != nil && e.Count != nil {
				return
			}
		}
		t.Fatalf("%q: counting refused what the plain fast path took", data)
	}
	if len(got) != len(plain) {
		t.Fatalf("%q: counting gives %d envelopes, the plain path %d", data, len(got), len(plain))
	}
	for i := range got {
		want := plain[i]
		if want.Reads != nil {
			if got[i].Count == nil || *got[i].Count < len(want.Reads) {
				t.Fatalf("%q: envelope %d counts %v reads, has %d", data, i, got[i].Count, len(want.Reads))
			}
			want.Count, want.Reads = got[i].Count, nil
		}
		if !reflect.DeepEqual(got[i], want) {
			t.Fatalf("%q: envelope %d differs:\ncounted %s\nplain   %s", data, i, show(got[i]), show(want))
		}
	}
}

// Counting reads: the count of a batched receipt, in a frame and in a
// poll answer, and CountReads for what encoding/json decoded.
func TestCountReads(t *testing.T) {
	frame := `[{"type":"receipt","room":"r","reads":{"u1":3,"u2":5,"u3":1}},{"type":"presence","room":"r","count":2}]`
	got, ok := DecodeFrameFastWith(nil, []byte(frame), FastOptions{CountReads: true})
	if !ok || len(got) != 2 || got[0].Reads != nil || got[0].Count == nil || *got[0].Count != 3 || *got[1].Count != 2 {
		t.Fatalf("frame: %v %+v", ok, got)
	}
	a, ok := DecodePollAnswerFastInto(nil, []byte(`{"events":`+frame+`,"cursor":"r:1"}`), FastOptions{CountReads: true})
	if !ok || len(a.Events) != 2 || a.Events[0].Reads != nil || *a.Events[0].Count != 3 {
		t.Fatalf("poll answer: %v %+v", ok, a)
	}
	if _, ok := DecodeFrameFastWith(nil, []byte(`{"reads":{"a":1},"count":1}`), FastOptions{CountReads: true}); ok {
		t.Fatal("counting took an envelope with reads and count")
	}
	envs, err := decodeJSON([]byte(frame))
	if err != nil {
		t.Fatal(err)
	}
	CountReads(envs)
	if !reflect.DeepEqual(envs, got) {
		t.Fatalf("CountReads gives %+v, the fast path %+v", envs, got)
	}
}

// Counting changes: blank ones, as many as came, in a frame and after
// encoding/json (CountChanges), and a list longer than the shared array.
func TestCountChanges(t *testing.T) {
	frame := `[{"type":"presence","room":"r","changes":[{"user":"a","name":"A","online":true},{"user":"b","online":false},{"user":"c","online":true}]},{"type":"presence","room":"r","count":2}]`
	got, ok := DecodeFrameFastWith(nil, []byte(frame), FastOptions{CountChanges: true})
	if !ok || len(got) != 2 || len(got[0].Changes) != 3 || got[0].Changes[0] != (PresenceChange{}) || got[1].Changes != nil || *got[1].Count != 2 {
		t.Fatalf("frame: %v %+v", ok, got)
	}
	if c := append(got[0].Changes, PresenceChange{User: "x"}); &c[0] == &got[0].Changes[0] || BlankChanges(1)[0] != (PresenceChange{}) {
		t.Fatal("append wrote into the shared blank changes")
	}
	envs, err := decodeJSON([]byte(frame))
	if err != nil {
		t.Fatal(err)
	}
	CountChanges(envs)
	if !reflect.DeepEqual(envs, got) {
		t.Fatalf("CountChanges gives %+v, the fast path %+v", envs, got)
	}
	var long []byte
	for i := range 300 {
		if i > 0 {
			long = append(long, ',')
		}
		long = append(long, `{"user":"u","online":true}`...)
	}
	got, ok = DecodeFrameFastWith(nil, []byte(`{"type":"presence","room":"r","changes":[`+string(long)+`]}`), FastOptions{CountChanges: true})
	if !ok || len(got) != 1 || len(got[0].Changes) != 300 || got[0].Changes[299] != (PresenceChange{}) {
		t.Fatalf("300 changes: %v, %d", ok, len(got[0].Changes))
	}
}

func show(e Envelope) string { return fmt.Sprintf("%+v %s", e, Encode(e)) }

// Counting reads and changes is for a poll answer's events: its control
// envelope decodes as encoding/json alone would decode it.
func TestPollAnswerControlNotCounted(t *testing.T) {
	a, ok := DecodePollAnswerFastInto(nil, []byte(`{"events":[{"type":"receipt","room":"r","reads":{"a":1}}],"cursor":"r:1",`+
		`"control":{"type":"control","reads":{"a":1,"b":2},"changes":[{"user":"u","online":true}]}}`), FastOptions{CountReads: true, CountChanges: true})
	if !ok || a.Control == nil || len(a.Control.Reads) != 2 || a.Control.Count != nil {
		t.Fatalf("control %+v (ok %v); want its reads decoded, not counted", a.Control, ok)
	}
	if len(a.Control.Changes) != 1 || a.Control.Changes[0].User != "u" {
		t.Fatalf("control's changes %+v; want them decoded, not counted", a.Control.Changes)
	}
	// The control first: the events after it are counted again.
	first, ok := DecodePollAnswerFastInto(nil, []byte(`{"control":{"type":"control","reads":{"a":1},"changes":[{"user":"u","online":true}]},`+
		`"events":[{"type":"receipt","room":"r","reads":{"a":1,"b":2}},{"type":"presence","room":"r","changes":[{"user":"v","online":true}]}],"cursor":"r:1"}`),
		FastOptions{CountReads: true, CountChanges: true})
	if !ok || first.Control == nil || len(first.Control.Reads) != 1 || first.Control.Changes[0].User != "u" || len(first.Events) != 2 ||
		first.Events[0].Reads != nil || first.Events[0].Count == nil || *first.Events[0].Count != 2 || first.Events[1].Changes[0] != (PresenceChange{}) {
		t.Fatalf("control first: %v %+v; want the control whole and the events counted", ok, first)
	}
	if len(a.Events) != 1 || a.Events[0].Count == nil || *a.Events[0].Count != 1 || a.Events[0].Reads != nil {
		t.Fatalf("events %+v; want the receipt's reads counted", a.Events)
	}
}

// Answers in the shape the server writes take the fast path.
func TestPollAnswerFastPath(t *testing.T) {
	for _, s := range []string{
		`{"events":[],"cursor":"general:3,~:1"}`,
		`{"events":[{"type":"message","room":"general","seq":4,"id":"m1","from":"u","name":"U","text":"hi","ts":1}],"cursor":"general:4"}`,
		`{"events":[{"type":"typing","room":"a","user":"b"}],"cursor":"a:1","control":null}`,
		`{"events":[],"cursor":"a:1","control":{"type":"control","level":0,"transports":["websocket","sse","poll"],"features":{"typing":true,"read_receipts":true},"poll_interval_ms":5000}}`,
		`{"events":[],"cursor":"a:1","control":{"type":"control","level":1,"transports":["poll"]},"control_tag":"9f3a00c2d41e7b55"}`,
	} {
		if _, ok := DecodePollAnswerFast([]byte(s)); !ok {
			t.Errorf("the fast path refused %s", s)
		}
	}
}

// decodeJSON decodes a frame with encoding/json alone.
func decodeJSON(data []byte) ([]Envelope, error) {
	if d := bytes.TrimLeft(data, " \t\r\n"); len(d) > 0 && d[0] == '[' {
		var list []Envelope
		err := json.Unmarshal(data, &list)
		return list, err
	}
	var e Envelope
	if err := json.Unmarshal(data, &e); err != nil {
		return nil, err
	}
	return []Envelope{e}, nil
}
