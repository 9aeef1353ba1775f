package poll

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/protocol"
)

func TestAcceptsGzip(t *testing.T) {
	for _, c := range []struct {
		header string
		want   bool
	}{
		{"", false},
		{"gzip", true},
		{"GZIP", true},
		{"x-gzip", true},
		{"deflate, gzip;q=0.8", true},
		{"br;q=1.0, gzip; q=0", false},
		{"gzip;q=0.000", false},
		{"identity", false},
		{"gzipped", false},
		{"*", false},
	} {
		r := httptest.NewRequest(http.MethodGet, "/v1/poll", nil)
		if c.header != "" {
			r.Header.Set("Accept-Encoding", c.header)
		}
		if got := acceptsGzip(r); got != c.want {
			t.Errorf("Accept-Encoding %q: acceptsGzip %v, want %v", c.header, got, c.want)
		}
	}
}

// chatFrames returns n message frames of typical chat text.
func chatFrames(n int) []core.Frame {
	texts := []string{
		"ok", "sounds good to me", "did anyone look at the deploy logs from this morning?",
		"I'll be five minutes late to standup", "lol", "can you send me the link again",
		"the build is green now, thanks for fixing the flaky test",
		"let's move the review to tomorrow afternoon if that works for everyone",
		"👍", "where are we on the migration?", "yes", "I pushed a fix, please take another look",
	}
	users := []string{"alice", "bob", "carol", "dmitri", "eve"}
	frames := make([]core.Frame, n)
	for i := range frames {
		u := users[i*7%len(users)]
		m := protocol.Message{Room: "team-chat", Seq: uint64(1000 + i), ID: fmt.Sprintf("c-%08x", i*2654435761),
			From: u, Name: u + " example", Text: texts[i*5%len(texts)], TS: 1_767_000_000_000 + int64(i)*1375}
		frames[i] = core.Frame{Type: protocol.TypeMessage, Room: m.Room, Seq: m.Seq, Data: protocol.Encode(m.Envelope())}
	}
	return frames
}

func testHandler(compress bool) *Handler {
	return &Handler{cfg: Config{CompressMin: 1 << 10, Compress: func(string) bool { return compress }}}
}

// An answer decodes to the frames it was given, says its exact length,
// and is gzipped only when asked, allowed and large enough.
func TestWriteAnswer(t *testing.T) {
	const cursor = "AWJvYgM"
	for _, c := range []struct {
		name                  string
		frames                int
		allow, accept, zipped bool
	}{
		{"large gzipped", 40, true, true, true},
		{"small plain", 2, true, true, false},
		{"not accepted", 40, true, false, false},
		{"not allowed", 40, false, true, false},
		{"empty", 0, true, true, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			frames := chatFrames(c.frames)
			r := httptest.NewRequest(http.MethodGet, "/v1/poll", nil)
			if c.accept {
				r.Header.Set("Accept-Encoding", "gzip")
			}
			w := httptest.NewRecorder()
			h := testHandler(c.allow)
			h.writeBuilt(w, h.answerFor(r, "u", frames, cursor, deflateOf(r), new(zstream), true))
			body := w.Body.Bytes()
			if cl := w.Header().Get("Content-Length"); cl != strconv.Itoa(len(body)) {
				t.Fatalf("Content-Length %q for %d bytes", cl, len(body))
			}
			if zipped := w.Header().Get("Content-Encoding") == "gzip"; zipped != c.zipped {
				t.Fatalf("gzipped: %v, want %v", zipped, c.zipped)
			}
			if c.zipped {
				zr, err := gzip.NewReader(bytes.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				if body, err = io.ReadAll(zr); err != nil {
					t.Fatal(err)
				}
			}
			var a struct {
				Events []json.RawMessage `json:"events"`
				Cursor string            `json:"cursor"`
			}
			if err := json.Unmarshal(body, &a); err != nil {
				t.Fatalf("answer %q: %v", body, err)
			}
			if a.Cursor != cursor || len(a.Events) != len(frames) {
				t.Fatalf("cursor %q with %d events, want %q with %d", a.Cursor, len(a.Events), cursor, len(frames))
			}
			for i, ev := range a.Events {
				if !bytes.Equal(ev, frames[i].Data) {
					t.Fatalf("event %d is %s, want %s", i, ev, frames[i].Data)
				}
			}
		})
	}
}

// The answer's buffers come from pools: building and compressing one
// allocates no buffer of its own size.
func TestWriteAnswerAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under the race detector")
	}
	frames := chatFrames(64)
	r := httptest.NewRequest(http.MethodGet, "/v1/poll", nil)
	r.Header.Set("Accept-Encoding", "gzip")
	h := testHandler(true)
	w := &discard{header: http.Header{}}
	h.writeBuilt(w, h.answerFor(r, "u", frames, "c", deflateOf(r), new(zstream), true)) // warm the pools
	allocs := testing.AllocsPerRun(50, func() {
		clear(w.header)
		h.writeBuilt(w, h.answerFor(r, "u", frames, "c", deflateOf(r), new(zstream), true))
	})
	if allocs > 4 {
		t.Fatalf("an answer (answerFor, writeBuilt) allocates %v times per answer, want at most 4 (the Content-Length value and the header map's growth)", allocs)
	}
}

// discard is a ResponseWriter that counts what it is given.
type discard struct {
	header http.Header
	n      int
}

func (d *discard) Header() http.Header         { return d.header }
func (d *discard) WriteHeader(int)             {}
func (d *discard) Write(p []byte) (int, error) { d.n += len(p); return len(p), nil }

// A conn drops pings and disconnects, hands each answer the frames that
// came since the last one, and refuses once MaxEvents wait.
func TestConn(t *testing.T) {
	c := newConn(&Handler{cfg: Config{MaxEvents: 3}})
	if c.pending() {
		t.Fatal("a new conn has frames")
	}
	ping := core.Frame{Type: protocol.TypePing}
	if err := c.Write([]core.Frame{ping, {Type: protocol.TypeDisconnect}}); err != nil || c.pending() {
		t.Fatalf("pings and disconnects: err %v, pending %v", err, c.pending())
	}
	select {
	case <-c.notify:
		t.Fatal("notified of no news")
	default:
	}
	frames := chatFrames(6)
	if err := c.Write(frames[:2]); err != nil {
		t.Fatalf("two frames: err %v", err)
	}
	first := c.seal()
	if got := framesOf(first); len(got) != 2 || got[1].Seq != frames[1].Seq {
		t.Fatalf("the first answer has %d frames, want the 2 written", len(got))
	}
	// pending clears the notification the first answer's frames left.
	if c.pending() {
		t.Fatal("frames left after seal")
	}
	select {
	case <-c.notify:
		t.Fatal("a stale notification survived pending")
	default:
	}
	if err := c.Write(frames[2:4]); err != nil || !c.pending() || c.ended() {
		t.Fatalf("after an answer: err %v, pending %v, ended %v; want the frames kept for the next", err, c.pending(), c.ended())
	}
	if err := c.Write(frames[4:]); err == nil || !c.ended() {
		t.Fatalf("past max: err %v, ended %v; want errFull", err, c.ended())
	}
	if err := c.Write(frames[:1]); err == nil {
		t.Fatal("a full conn took a frame")
	}
	second := c.seal()
	if got := framesOf(second); len(got) != 4 || got[0].Seq != frames[2].Seq {
		t.Fatalf("the second answer has %d frames, want the 4 written after the first", len(got))
	}
	releaseFrames(first)
	releaseFrames(second)
	if c.pending() {
		t.Fatal("frames after the answers")
	}
}
