package client

import (
	"bufio"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// firstBytes is a RoundTripper that notes the first byte of each poll
// answer's body, as it came from the server.
type firstBytes struct {
	next http.RoundTripper
	mu   sync.Mutex
	seen map[byte]int
}

func (f *firstBytes) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := f.next.RoundTrip(req)
	if err != nil || !strings.HasSuffix(req.URL.Path, "/v1/poll") || resp.StatusCode != http.StatusOK {
		return resp, err
	}
	br := bufio.NewReader(resp.Body)
	if b, err := br.Peek(1); err == nil {
		f.mu.Lock()
		f.seen[b[0]]++
		f.mu.Unlock()
	}
	resp.Body = struct {
		io.Reader
		io.Closer
	}{br, resp.Body}
	return resp, nil
}

// TestPollDeflate: a poll client that asks for deflated answers
// (PollDeflate) gets every message once, in order, from answers that
// came deflated, the stream going on ('c') from one to the next.
func TestPollDeflate(t *testing.T) {
	srv := newServer(t, serverOptions{degrade: true}) // compression on at level 0
	fb := &firstBytes{next: &http.Transport{}, seen: map[byte]int{}}
	cfg := testConfig(t, srv.URL, "alice", []string{Poll}, "lobby")
	cfg.PollDeflate = true
	cfg.HTTPClient = &http.Client{Transport: fb}
	c := start(t, cfg)
	waitState(t, c, "poll connected", connectedOn(Poll))
	ctx := stepCtx(t)
	for i := uint64(1); i <= 30; i++ {
		if _, err := c.Send(ctx, "lobby", text(i)); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	wantSeqs(t, recvMessages(t, c, 30), "lobby", 1, text)
	wantNoMore(t, srv, c, "lobby")
	fb.mu.Lock()
	defer fb.mu.Unlock()
	if fb.seen['n'] == 0 || fb.seen['c'] == 0 || fb.seen['{'] != 0 {
		t.Fatalf("answers by first byte %v: want new streams (n) and answers going on (c), none plain", fb.seen)
	}
}

// FuzzUndeflate: any body a server sends to a poll with deflate= never
// panics; what comes out is the body itself when it is JSON, an error, or
// exactly the size the chunk announced.
func FuzzUndeflate(f *testing.F) {
	for _, s := range []string{
		`{"events":[],"cursor":"a:1"}`, "n5\n\x00\x05\x00\xfa\xffhello\x00\x00\x00\xff\xff", "c5\nxx", "n\n", "n-1\n", "n99999999999\n",
		"x", "", "c0\n\x00\x00\x00\xff\xff",
	} {
		f.Add([]byte(s), false)
	}
	f.Fuzz(func(t *testing.T, body []byte, primed bool) {
		var s pollScratch
		if primed {
			if _, err := s.undeflate([]byte("n5\n\x00\x05\x00\xfa\xffhello\x00\x00\x00\xff\xff")); err != nil {
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
			if n, err := strconv.Atoi(line[1:]); err != nil || n != len(out) {
				t.Fatalf("chunk %q gave %d bytes", line, len(out))
			}
		}
	})
}
