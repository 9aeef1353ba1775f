package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/chatd/chatd/core/protocol"
)

// reusedSeeds are frames as the server writes them (the first four fill
// every kind of field), and frames the fast path gives up on partway.
var reusedSeeds = []string{
	`[{"type":"delete","room":"r","seq":6,"id":"d","from":"a","ts":2,"target":3},{"type":"message","room":"r","seq":4,"id":"x","text":"t","ts":1,"edited":1796188044453}]`,
	`[{"type":"receipt","room":"r","reads":{"u1":3,"zoë":18446744073709551615}},{"type":"presence","room":"r","count":2}]`,
	`[{"type":"ack","ref":"a2","id":"a2","room":"r","seq":2,"ts":1},{"type":"message","room":"r","seq":2,"id":"a2","text":"hi"}]`,
	`{"type":"message","room":"lobby","seq":42,"id":"7f1c","from":"alice","name":"Alice","text":"hello","ts":1796188044453}`,
	`{"type":"joined","room":"r","head":0,"recovered":true,"ref":"join-1"}`,
	`{"type":"control","level":2,"transports":["sse","poll"],"features":{"typing":false},"poll_interval_ms":5000}`,
	`[{"type":"message","room":"r","seq":1,"text":"a"},{"type":"message","room":"r","seq":2,"text":"a\"b"}]`,
	`[{"type":"message","room":"r","seq":1},{"seq":-1}]`, `[]`, `{}`, `[{}]`, `{"seq":1}x`,
}

// FuzzDecodeReused decodes frames as a stream's reader does, into the
// array the frames before used, and checks each against encoding/json.
func FuzzDecodeReused(f *testing.F) {
	for _, s := range reusedSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(reusedSameAsJSON)
}

// reusedSameAsJSON decodes data as a stream's reader does, into the
// array the frame before used (full envelopes of every kind of field),
// and checks that it gets what encoding/json makes of data alone: nothing
// left over from before, whether the fast path took data or gave up on
// it partway.
func reusedSameAsJSON(t *testing.T, data []byte) {
	var scratch frameScratch
	for _, before := range reusedSeeds[:4] {
		envs, err := scratch.decode([]byte(before), protocol.FastOptions{})
		if err != nil {
			t.Fatal(err)
		}
		scratch.done(envs)
	}
	got, err := scratch.decode(data, protocol.FastOptions{})
	want, jerr := decodeJSON(data)
	if (err == nil) != (jerr == nil) {
		t.Fatalf("%q: reused array gives error %v, encoding/json %v", data, err, jerr)
	}
	if err != nil {
		return
	}
	if len(got) != len(want) {
		t.Fatalf("%q: reused array gives %d envelopes, encoding/json %d", data, len(got), len(want))
	}
	for i := range got {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Fatalf("%q: envelope %d differs:\nreused %s\njson   %s", data, i, show(got[i]), show(want[i]))
		}
	}
}

// TestDecodeReusedGivesUp: a frame the fast path refuses after its first
// envelope (an escaped string in the second) decodes, through a reused
// array, as encoding/json decodes it.
func TestDecodeReusedGivesUp(t *testing.T) {
	data := []byte(`[{"type":"presence","room":"r","user":"u1","online":true},{"type":"message","room":"r","seq":9,"text":"a\"b"}]`)
	if _, ok := protocol.DecodeFrameFast(nil, data); ok {
		t.Fatal("the fast path took an escaped string")
	}
	reusedSameAsJSON(t, data)
}

func show(e protocol.Envelope) string { return fmt.Sprintf("%+v %s", e, protocol.Encode(e)) }

// BenchmarkDecodeFrame decodes a batch of 10 messages, as a busy room's
// WebSocket frame carries them.
func BenchmarkDecodeFrame(b *testing.B) {
	var frame []protocol.Envelope
	for i := range 10 {
		frame = append(frame, protocol.Envelope{Type: protocol.TypeMessage, Room: "load-1", Seq: uint64(100 + i),
			ID: NewID(), From: "u00001", Name: "u00001", TS: 1796188044453,
			Text: "t=1796188044453000000 u00001 #7 ..............................................."})
	}
	data := []byte("[")
	for i, e := range frame {
		if i > 0 {
			data = append(data, ',')
		}
		data = append(data, protocol.Encode(e)...)
	}
	data = append(data, ']')
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := protocol.DecodeFrameFast(nil, data); !ok {
				b.Fatal("refused")
			}
		}
	})
	b.Run("fast-reused", func(b *testing.B) {
		b.ReportAllocs()
		var scratch frameScratch
		for b.Loop() {
			envs, err := scratch.decode(data, protocol.FastOptions{})
			if err != nil {
				b.Fatal(err)
			}
			scratch.done(envs)
		}
	})
	b.Run("json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := decodeJSON(data); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// FuzzPollAnswer is differential: decodePollAnswer accepts what
// encoding/json accepts as a poll answer, and gives the same answer,
// decoding into the array that answers before used, as a poll link does.
func FuzzPollAnswer(f *testing.F) {
	for _, s := range []string{
		`{"events":[],"cursor":"general:3,~:1"}`,
		`{"events":[{"type":"message","room":"general","seq":4,"id":"m1","from":"u","name":"U","text":"hi","ts":1}],"cursor":"general:4"}`,
		`{"events":null,"cursor":"","control":{"type":"control","level":1,"transports":["sse","poll"]}}`,
		`{"cursor":"a:1","events":[{"type":"typing","room":"a","user":"b"},{"type":"receipt","room":"a","user":"b","seq":2}]}`,
		`{"events":[],"cursor":"a:2","control":{"type":"control","level":0,"transports":["poll"]},"control_tag":"9f3a00c2d41e7b55"}`,
		`{"events":[],"cursor":"a:2","control_tag":"x","control_tag":"y"}`, `{"control_tag":1}`,
		`{"events":{"type":"message"}}`, `{"events":"x"}`, `[]`, `{"events":[1]}`,
		`{"events":[],"cursor":"a:1","control":{"type":"control","level":0,"transports":["websocket","sse","poll"],"features":{"files":true,"typing":false},"poll_interval_ms":5000}}`,
		`{"control":{"features":{"a":true},"features":{"b":true}}}`, `{"control":{"level":1,"level":2,"transports":[]}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var want pollAnswer
		wantErr := json.Unmarshal(data, &want)
		var scratch frameScratch
		for _, before := range reusedSeeds[:3] {
			ans, err := decodePollAnswer(&scratch, []byte(`{"events":[`+strings.Trim(before, "[]")+`],"cursor":"r:9"}`), protocol.FastOptions{})
			if err != nil || len(ans.Events) == 0 {
				t.Fatalf("priming answer: %v, %d events", err, len(ans.Events))
			}
			scratch.done(ans.Events)
		}
		// The last answer before is not let go of, as after a poll a
		// Join restarted: what it left in the array must not show.
		if _, err := decodePollAnswer(&scratch, []byte(`{"events":[`+strings.Trim(reusedSeeds[3], "[]")+
			`,`+strings.Trim(reusedSeeds[0], "[]")+`],"cursor":"r:9"}`), protocol.FastOptions{}); err != nil {
			t.Fatal(err)
		}
		got, err := decodePollAnswer(&scratch, data, protocol.FastOptions{})
		if err != nil {
			if wantErr == nil {
				t.Fatalf("%q: refused (%v), which encoding/json takes", data, err)
			}
			return
		}
		if wantErr != nil {
			t.Fatalf("%q: taken, which encoding/json refuses: %v", data, wantErr)
		}
		if len(got.Events) == 0 && len(want.Events) == 0 {
			got.Events, want.Events = nil, nil
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q:\ngot  %+v\nwant %+v", data, got, want)
		}
	})
}

// readBodyInto, given no buffer, reads a body of a stated length into one
// buffer of that size, a body of unknown length whole, and never more
// than its limit.
func TestReadBody(t *testing.T) {
	for _, tc := range []struct {
		name   string
		length int64
		body   string
		limit  int64
		want   string
		err    bool
	}{
		{"stated", 5, "hello", 10, "hello", false},
		{"unknown", -1, "hello", 10, "hello", false},
		{"unknown, over the limit", -1, "hello world", 5, "hello", false},
		{"stated, over the limit", 11, "hello world", 5, "hello", false},
		{"stated, body short", 9, "hello", 10, "", true},
		{"stated, over the kept buffer", 40, strings.Repeat("x", 40), 100, strings.Repeat("x", 40), false},
		{"unknown, over the kept buffer", -1, strings.Repeat("y", 700), 1000, strings.Repeat("y", 700), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := &http.Response{ContentLength: tc.length, Body: io.NopCloser(strings.NewReader(tc.body))}
			got, err := readBodyInto(nil, resp, tc.limit)
			if (err != nil) != tc.err || string(got) != tc.want {
				t.Fatalf("readBodyInto(nil) = %q, %v; want %q, error %v", got, err, tc.want, tc.err)
			}
			if !tc.err && tc.length >= 0 && tc.length <= tc.limit && cap(got) != int(tc.length) {
				t.Fatalf("a stated body of %d bytes went into a buffer of %d", tc.length, cap(got))
			}
			// A kept buffer that holds the body, of a stated length or
			// not, is the one read into.
			buf := make([]byte, 3, 16)
			resp = &http.Response{ContentLength: tc.length, Body: io.NopCloser(strings.NewReader(tc.body))}
			got, err = readBodyInto(buf, resp, tc.limit)
			if (err != nil) != tc.err || string(got) != tc.want {
				t.Fatalf("readBodyInto = %q, %v; want %q, error %v", got, err, tc.want, tc.err)
			}
			if !tc.err && len(tc.want) <= cap(buf) && &got[:1][0] != &buf[:1][0] {
				t.Fatal("a body that fits the kept buffer went into a new one")
			}
		})
	}
}

// With CountChanges, a frame the fast path gives up on has its changes
// counted after encoding/json, as the fast path counts them.
func TestCountChangesFallback(t *testing.T) {
	data := []byte(`[{"type":"presence","room":"r","changes":[{"user":"a","online":true},{"user":"b","online":false}]},` +
		`{"type":"message","room":"r","seq":9,"text":"a\"b"}]`)
	o := protocol.FastOptions{CountChanges: true}
	if _, ok := protocol.DecodeFrameFastWith(nil, data, o); ok {
		t.Fatal("the fast path took an escaped string")
	}
	envs, err := decodeFrameInto(nil, data, o)
	if err != nil || len(envs) != 2 || len(envs[0].Changes) != 2 || envs[0].Changes[0] != (protocol.PresenceChange{}) || envs[1].Text != `a"b` {
		t.Fatalf("decodeFrameInto = %+v, %v; want two blank changes and the message", envs, err)
	}
}

// readBodyInto keeps what a reader gives with its io.EOF, and fails with
// a reader's error, for a body of unknown length read into a kept buffer.
func TestReadBodyIntoReaders(t *testing.T) {
	buf := make([]byte, 0, 4)
	resp := &http.Response{ContentLength: -1, Body: io.NopCloser(iotest.DataErrReader(strings.NewReader("hello, world")))}
	if got, err := readBodyInto(buf, resp, 100); err != nil || string(got) != "hello, world" {
		t.Fatalf("data with EOF: %q, %v", got, err)
	}
	boom := errors.New("boom")
	resp = &http.Response{ContentLength: -1, Body: io.NopCloser(io.MultiReader(strings.NewReader("part"), iotest.ErrReader(boom)))}
	if got, err := readBodyInto(buf, resp, 100); !errors.Is(err, boom) || got != nil {
		t.Fatalf("a reader that fails partway: %q, %v", got, err)
	}
}

// A link's read buffer and envelope array go to the next link empty:
// the buffer no larger than a link keeps between frames, and the array
// pointing at nothing the last frame decoded.
func TestWSReadReset(t *testing.T) {
	var r wsRead
	r.buf.b.Grow(4 * keepFrameBuffer)
	r.buf.b.WriteString(`{"type":"message"}`)
	envs, err := r.scratch.decode([]byte(reusedSeeds[0]), protocol.FastOptions{})
	if err != nil || len(envs) == 0 {
		t.Fatalf("decode: %v, %d envelopes", err, len(envs))
	}
	r.reset()
	if r.buf.b.Len() != 0 || r.buf.b.Cap() > keepFrameBuffer {
		t.Fatalf("buffer after reset: len %d, cap %d", r.buf.b.Len(), r.buf.b.Cap())
	}
	if len(r.scratch) != 0 {
		t.Fatalf("envelope array after reset: len %d", len(r.scratch))
	}
	for i, e := range r.scratch[:cap(r.scratch)] {
		if !reflect.ValueOf(e).IsZero() {
			t.Fatalf("envelope %d kept after reset: %+v", i, e)
		}
	}
	// A buffer a link may keep stays, emptied.
	r.buf.b.Grow(keepFrameBuffer / 2)
	r.buf.b.WriteString("x")
	kept := r.buf.b.Cap()
	r.reset()
	if r.buf.b.Cap() != kept || r.buf.b.Len() != 0 {
		t.Fatalf("kept buffer: cap %d (want %d), len %d", r.buf.b.Cap(), kept, r.buf.b.Len())
	}
}
