package client

import (
	"bytes"
	"fmt"
	"hash/crc32"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// firstBytes notes the first byte of each poll answer's body, as it came
// from the server, and the polls without a cursor (a link's first). With
// spoil, it changes the checksum of the first answer that goes on with a
// stream.
type firstBytes struct {
	pollTap
	spoil bool
	seen  map[byte]int
	fresh int // polls without a cursor
}

func newFirstBytes(spoil bool) *firstBytes {
	f := &firstBytes{spoil: spoil, seen: map[byte]int{}}
	f.next = &http.Transport{}
	f.see = func(req *http.Request, body []byte) {
		if req.URL.Query().Get("cursor") == "" {
			f.fresh++
		}
		if len(body) > 0 {
			f.seen[body[0]]++
			if f.spoil && body[0] == 'c' {
				f.spoil = false
				i := bytes.IndexByte(body, ' ') + 1
				body[i] ^= 1 // '0'<->'1', 'a'<->'`'...: the checksum no longer matches
			}
		}
	}
	return f
}

// deflatedChat runs a poll client with PollDeflate over fb against a
// server with compression on (level 0), which sends n messages to lobby
// and receives each once, in order.
func deflatedChat(t *testing.T, fb *firstBytes, n uint64) {
	t.Helper()
	srv := newServer(t, serverOptions{degrade: true})
	cfg := testConfig(t, srv.URL, "alice", []string{Poll}, "lobby")
	cfg.PollDeflate = true
	cfg.HTTPClient = &http.Client{Transport: fb}
	c := start(t, cfg)
	waitState(t, c, "poll connected", connectedOn(Poll))
	ctx := stepCtx(t)
	for i := uint64(1); i <= n; i++ {
		if _, err := c.Send(ctx, "lobby", text(i)); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	wantSeqs(t, recvMessages(t, c, int(n)), "lobby", 1, text)
	wantNoMore(t, srv, c, "lobby")
}

// TestPollDeflate: a poll client that asks for deflated answers
// (PollDeflate) gets every message once, in order, from answers that
// came deflated, the stream going on ('c') from one to the next.
func TestPollDeflate(t *testing.T) {
	fb := newFirstBytes(false)
	deflatedChat(t, fb, 30)
	fb.mu.Lock()
	defer fb.mu.Unlock()
	if fb.seen['n'] == 0 || fb.seen['c'] == 0 || fb.seen['{'] != 0 {
		t.Fatalf("answers by first byte %v: want new streams (n) and answers going on (c), none plain", fb.seen)
	}
}

// TestPollDeflateBadChunk: a deflated answer that does not inflate to
// the JSON its checksum names is dropped unread, and the link polls
// again from the same cursor on a new stream: every message once, in
// order, and no new link (a second poll without a cursor).
func TestPollDeflateBadChunk(t *testing.T) {
	fb := newFirstBytes(true)
	deflatedChat(t, fb, 10)
	fb.mu.Lock()
	defer fb.mu.Unlock()
	if fb.spoil {
		t.Fatal("no answer went on with a stream, so none was spoilt")
	}
	if fb.fresh != 1 {
		t.Fatalf("%d polls without a cursor, want 1: the bad chunk ended the link", fb.fresh)
	}
}

// FuzzUndeflate: any body a server sends to a poll with deflate= never
// panics; what comes out is the body itself when it is JSON, an error, or
// exactly the size and checksum the chunk announced.
func FuzzUndeflate(f *testing.F) {
	for _, s := range []string{
		`{"events":[],"cursor":"a:1"}`, "n5 3610a686\n\x00\x05\x00\xfa\xffhello\x00\x00\x00\xff\xff", "c5 3610a686\nxx", "n\n", "n-1 0\n", "n99999999999 0\n",
		"x", "", "c0 00000000\n\x00\x00\x00\xff\xff", "n5 00000000\n\x00\x05\x00\xfa\xffhello\x00\x00\x00\xff\xff",
	} {
		f.Add([]byte(s), false)
	}
	f.Fuzz(func(t *testing.T, body []byte, primed bool) {
		var s pollScratch
		if primed {
			if _, err := s.undeflate([]byte("n5 3610a686\n\x00\x05\x00\xfa\xffhello\x00\x00\x00\xff\xff")); err != nil {
				t.Fatalf("priming chunk: %v", err)
			}
		}
		out, err := s.undeflate(body)
		switch {
		case err != nil:
			if s.z.Len() != 0 {
				t.Fatalf("a failed chunk left a window of %d bytes", s.z.Len())
			}
		case len(body) == 0 || body[0] == '{':
			if string(out) != string(body) {
				t.Fatalf("JSON %q came out as %q", body, out)
			}
		default:
			line, _, _ := strings.Cut(string(body), "\n")
			length, sum, _ := strings.Cut(line[1:], " ")
			if n, err := strconv.Atoi(length); err != nil || n != len(out) || sum != fmt.Sprintf("%08x", crc32.ChecksumIEEE(out)) {
				t.Fatalf("chunk %q gave %d bytes", line, len(out))
			}
		}
	})
}
