package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
)

// recvSeqs waits for the messages of room with seqs from..to, in order.
func recvSeqs(t testing.TB, c *Client, room string, from, to uint64) {
	t.Helper()
	wantSeqs(t, recvMessages(t, c, int(to-from+1)), room, from, text)
}

// postEach posts the messages from..to of room one at a time, as bob,
// and waits for c to receive each before the next: each is a poll's
// answer, and the client's next poll follows it.
func postEach(t testing.TB, srv *testServer, c *Client, room string, from, to uint64) {
	t.Helper()
	for seq := from; seq <= to; seq++ {
		srv.post(t, "bob", room, fmt.Sprint(room, "-", seq), text(seq))
		recvSeqs(t, c, room, seq, seq)
	}
}

// A poll client builds its polls from one request (pollScratch.request):
// every poll says which client it is, and the round trip of a send goes
// out once, on the next request, without sticking to the polls after it.
func TestPollRequestHeaders(t *testing.T) {
	t.Parallel()
	const room = "poll-headers"
	srv := newServer(t, serverOptions{})
	front := newHTTPProxy(t, srv.URL, nil)
	c := start(t, testConfig(t, front.URL, "ulla", []string{Poll}, room))
	waitState(t, c, "connected on poll", connectedOn(Poll))
	ctx := stepCtx(t)
	if _, err := c.Send(ctx, room, text(1)); err != nil {
		t.Fatal(err)
	}
	recvSeqs(t, c, room, 1, 1)
	// Polls after the ack: the first takes the round trip (unless the
	// client had another request to put it on), the rest must not.
	postEach(t, srv, c, room, 2, 4)
	polls := front.pollHeadersSeen()
	if len(polls) < 4 {
		t.Fatalf("%d polls, want at least 4", len(polls))
	}
	key := polls[0].Get(clientHeader)
	if key == "" {
		t.Fatalf("the first poll has no %s", clientHeader)
	}
	rtts := 0
	for i, h := range polls {
		if got := h.Values(clientHeader); len(got) != 1 || got[0] != key {
			t.Errorf("poll %d: %s %q, want [%q]", i, clientHeader, got, key)
		}
		switch v := h.Values(rttHeader); {
		case len(v) == 0:
		case len(v) == 1 && strings.HasPrefix(v[0], Poll+"="):
			rtts++
		default:
			t.Errorf("poll %d: %s %q, want one %s= value or none", i, rttHeader, v, Poll)
		}
	}
	// Three polls at least began after the ack (each of the messages
	// after it came in an answer), and the first took the round trip.
	if rtts != 1 {
		t.Errorf("%d polls carried a round trip, want the one send's", rtts)
	}
	if last := polls[len(polls)-1]; last.Get(rttHeader) != "" {
		t.Errorf("the last poll carries %s %q: a round trip stuck to the polls", rttHeader, last.Get(rttHeader))
	}
}

// A poll answered with a redirect is followed, as http.Client follows it:
// the client keeps polling and misses nothing. Here every poll that
// resumes from a cursor is redirected once.
func TestPollRedirect(t *testing.T) {
	t.Parallel()
	const room = "poll-redirect"
	srv := newServer(t, serverOptions{})
	var mu sync.Mutex
	redirected, followed := 0, 0
	front := newHTTPProxy(t, srv.URL, func(f *httpProxy) {
		f.pollHook = func(w http.ResponseWriter, r *http.Request) bool {
			mu.Lock()
			defer mu.Unlock()
			q := r.URL.Query()
			switch {
			case q.Get("hop") != "":
				followed++
			case q.Get("cursor") != "":
				redirected++
				http.Redirect(w, r, r.URL.Path+"?"+r.URL.RawQuery+"&hop=1", http.StatusTemporaryRedirect)
				return true
			}
			return false
		}
	})
	c := start(t, testConfig(t, front.URL, "vera", []string{Poll}, room))
	waitState(t, c, "connected on poll", connectedOn(Poll))
	postEach(t, srv, c, room, 1, 4)
	mu.Lock()
	defer mu.Unlock()
	if redirected < 4 || followed < 4 {
		t.Fatalf("%d polls redirected, %d redirects followed; want at least 4 of each", redirected, followed)
	}
}

// A client with a cookie jar sends its cookies with every poll, as
// http.Client does (a load balancer's sticky cookie, say).
func TestPollCookieJar(t *testing.T) {
	t.Parallel()
	const room = "poll-jar"
	srv := newServer(t, serverOptions{})
	front := newHTTPProxy(t, srv.URL, func(f *httpProxy) {
		f.pollHook = func(w http.ResponseWriter, r *http.Request) bool {
			if _, err := r.Cookie("node"); err != nil {
				http.SetCookie(w, &http.Cookie{Name: "node", Value: "n1", Path: "/"})
			}
			return false
		}
	})
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, front.URL, "wren", []string{Poll}, room)
	cfg.HTTPClient = &http.Client{Jar: jar}
	c := start(t, cfg)
	waitState(t, c, "connected on poll", connectedOn(Poll))
	postEach(t, srv, c, room, 1, 2)
	polls := front.pollHeadersSeen()
	if len(polls) < 3 {
		t.Fatalf("%d polls, want at least 3", len(polls))
	}
	for i, h := range polls[1:] {
		if !strings.Contains(h.Get("Cookie"), "node=n1") {
			t.Errorf("poll %d: Cookie %q, want node=n1", i+1, h.Get("Cookie"))
		}
	}
}

// roundTripFunc is a Transport made of a function: for what real
// transports do not do (a nil body, a nil answer).
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// doPoll as http.Client.Do would answer: a plain answer is the
// transport's, a redirect with no body is followed through Do from then
// on, one with no Location is the answer, a transport's error comes
// wrapped in a *url.Error (its answer, if any, closed), and a transport
// that answers nothing, or no body for a length, is an error. Each poll
// has a header of its own, whatever a transport does to the last one's.
func TestDoPollEdges(t *testing.T) {
	newClient := func(rt roundTripFunc) *Client {
		return New(Config{URL: "http://127.0.0.1:1", HTTPClient: &http.Client{Transport: rt}})
	}
	poll := func(c *Client, s *pollScratch) (*http.Response, error) {
		t.Helper()
		req, err := s.request(context.Background(), c, "q=1")
		if err != nil {
			t.Fatal(err)
		}
		return c.doPoll(req)
	}
	ok := func(r *http.Request) *http.Response {
		return &http.Response{StatusCode: http.StatusOK, Header: http.Header{}, Body: http.NoBody, Request: r}
	}

	// A transport that adds to every request's header, against the rule.
	var seen [][]string
	c := newClient(func(r *http.Request) (*http.Response, error) {
		r.Header.Add("X-Trace", "1")
		r.Header[canonicalClientHeader] = append(r.Header[canonicalClientHeader], "extra")
		seen = append(seen, r.Header.Values("X-Trace"))
		return ok(r), nil
	})
	var s pollScratch
	for range 3 {
		resp, err := poll(c, &s)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("a plain poll: %v, %v", resp, err)
		}
		resp.Body.Close()
		req, _ := s.request(context.Background(), c, "q=2")
		if got := req.Header.Values(clientHeader); len(got) != 1 || got[0] != c.key {
			t.Fatalf("the next poll's %s: %q, want [%q]", clientHeader, got, c.key)
		}
	}
	for i, v := range seen {
		if len(v) != 1 {
			t.Fatalf("poll %d carried X-Trace %q: the header was the last poll's", i, v)
		}
	}
	if c.pollViaDo.Load() {
		t.Fatal("plain answers sent the polls through Do")
	}

	var calls []string
	c = newClient(func(r *http.Request) (*http.Response, error) {
		calls = append(calls, r.URL.RawQuery)
		if r.URL.Query().Get("hop") == "" {
			h := http.Header{"Location": {"/v1/poll?" + r.URL.RawQuery + "&hop=1"}}
			return &http.Response{StatusCode: http.StatusTemporaryRedirect, Header: h, Request: r}, nil // no Body
		}
		return ok(r), nil
	})
	resp, err := poll(c, &pollScratch{})
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("a redirected poll: %v, %v", resp, err)
	}
	resp.Body.Close()
	if want := []string{"q=1", "q=1", "q=1&hop=1"}; !slices.Equal(calls, want) {
		t.Fatalf("transport saw %q, want %q (the poll, again through Do, then the redirect)", calls, want)
	}
	if !c.pollViaDo.Load() {
		t.Fatal("after a redirect, polls do not go through Do")
	}

	c = newClient(func(r *http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: http.StatusFound, Header: http.Header{}, Body: http.NoBody, Request: r}, nil
	})
	if resp, err := poll(c, &pollScratch{}); err != nil || resp.StatusCode != http.StatusFound || c.pollViaDo.Load() {
		t.Fatalf("a redirect with no Location: %v, %v, through Do %v; want the 302 as it came", resp, err, c.pollViaDo.Load())
	}

	boom := errors.New("boom")
	closed := false
	for _, tc := range []struct {
		rt   roundTripFunc
		want string
	}{
		{func(*http.Request) (*http.Response, error) { return nil, boom }, "boom"},
		{func(r *http.Request) (*http.Response, error) {
			return &http.Response{StatusCode: http.StatusOK, Body: closeFunc(func() { closed = true }), Request: r}, boom
		}, "boom"},
		{func(*http.Request) (*http.Response, error) { return nil, nil }, "nil *Response"},
		{func(r *http.Request) (*http.Response, error) {
			return &http.Response{StatusCode: http.StatusOK, ContentLength: 5, Request: r}, nil
		}, "nil *Response.Body"},
		{func(*http.Request) (*http.Response, error) {
			return nil, tls.RecordHeaderError{RecordHeader: [5]byte{'H', 'T', 'T', 'P', '/'}}
		}, http.ErrSchemeMismatch.Error()},
	} {
		_, err := poll(newClient(tc.rt), &pollScratch{})
		var ue *url.Error
		if !errors.As(err, &ue) || ue.Op != "Get" || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("doPoll: %v, want a *url.Error of Get with %q", err, tc.want)
		}
	}
	if !closed {
		t.Fatal("the answer a transport gave with its error was not closed")
	}
}

// closeFunc is a body with nothing to read that calls f when closed.
type closeFunc func()

func (f closeFunc) Read([]byte) (int, error) { return 0, io.EOF }
func (f closeFunc) Close() error             { f(); return nil }
