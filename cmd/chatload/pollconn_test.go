package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

// TestPollTransport: polls over plain HTTP/1.1 reuse one connection
// while the server keeps it, are sent again on a new one when the server
// closed it while idle, open a new one after an answer that says
// Connection: close, end with the context's error when cancelled while
// held, and leave what the transport does not carry (compression) to
// next. Every answer arrives whole, whether its head is the plain 200
// the transport parses itself or one it leaves to http.ReadResponse (a
// chunked body, another status); one it parsed itself and the caller
// closed unread is read past, or its connection closed if it is long.
func TestPollTransport(t *testing.T) {
	held := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Query().Get("do") {
		case "close":
			w.Header().Set("Connection", "close")
		case "hold":
			close(held)
			<-r.Context().Done()
			return
		}
		body := "answer " + r.URL.Query().Get("n") + " " + r.Header.Get("X-Test")
		switch r.URL.Query().Get("do") {
		case "chunked": // no length: net/http chunks it, and the transport's reader leaves it to http.ReadResponse
			_, _ = io.WriteString(w, body[:3])
			w.(http.Flusher).Flush()
			_, _ = io.WriteString(w, body[3:])
			return
		case "big": // more than Close reads past
			body = strings.Repeat("x", maxDrain+1)
		case "203": // not a 200: left to http.ReadResponse too
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			w.WriteHeader(http.StatusNonAuthoritativeInfo)
			_, _ = io.WriteString(w, body)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	var dials, nexts atomic.Int32
	var d net.Dialer
	next := &countingTransport{Transport: &http.Transport{}, n: &nexts}
	pt := &pollTransport{next: next, dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		return d.DialContext(ctx, network, addr)
	}}
	t.Cleanup(pt.CloseIdleConnections)
	hc := &http.Client{Transport: pt}

	poll := func(ctx context.Context, query string, n int) (string, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/v1/poll?n="+strconv.Itoa(n)+query, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Test", "h"+strconv.Itoa(n))
		resp, err := hc.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	expect := func(query string, n int, wantDials int32) {
		t.Helper()
		got, err := poll(context.Background(), query, n)
		if err != nil {
			t.Fatalf("poll %d: %v", n, err)
		}
		if want := "answer " + strconv.Itoa(n) + " h" + strconv.Itoa(n); got != want {
			t.Fatalf("poll %d: answer %q, want %q", n, got, want)
		}
		if d := dials.Load(); d != wantDials {
			t.Fatalf("after poll %d: %d dials, want %d", n, d, wantDials)
		}
	}
	for n := range 5 {
		expect("", n, 1) // one connection, kept
	}
	srv.CloseClientConnections() // the server drops the idle connection
	expect("", 5, 2)             // sent again on a new one
	expect("&do=close", 6, 2)    // Connection: close: not kept
	expect("", 7, 3)
	expect("&do=chunked", 71, 3) // answers the transport does not parse itself still keep the connection
	expect("&do=203", 72, 3)
	expect("", 73, 3)
	// An answer closed unread: a short one is read past and the
	// connection kept; one longer than maxDrain closes it.
	closeUnread := func(query string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, srv.URL+"/v1/poll?n=0"+query, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	closeUnread("")
	expect("", 74, 3)
	closeUnread("&do=big")
	expect("", 75, 4)

	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := poll(ctx, "&do=hold", 8)
		errc <- err
	}()
	<-held
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled poll: %v, want context.Canceled", err)
	}
	expect("", 9, 5) // the cancelled poll's connection is not kept

	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/poll?n=10", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if nexts.Load() != 1 || dials.Load() != 5 {
		t.Fatalf("a poll that asks for gzip: %d through next, %d dials; want 1 and 5", nexts.Load(), dials.Load())
	}
}

// TestPollTransportGzip: with gzip the transport asks for gzipped
// answers and gives them inflated, as net/http's Transport does with
// compression on (no Content-Encoding or Content-Length, Uncompressed),
// whether it parsed the head itself or left it to http.ReadResponse (a
// chunked answer); plain answers still come as they are; the
// connection carries every poll, and no poll goes to next.
func TestPollTransportGzip(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := strings.Repeat("answer "+r.URL.Query().Get("n")+" ", 40)
		if r.URL.Query().Get("do") == "plain" || r.Header.Get("Accept-Encoding") != "gzip" {
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			_, _ = io.WriteString(w, body)
			return
		}
		var z bytes.Buffer
		zw := gzip.NewWriter(&z)
		_, _ = io.WriteString(zw, body)
		_ = zw.Close()
		w.Header().Set("Content-Encoding", "gzip")
		if r.URL.Query().Get("do") == "chunked" { // no length: left to http.ReadResponse
			_, _ = w.Write(z.Bytes()[:5])
			w.(http.Flusher).Flush()
			_, _ = w.Write(z.Bytes()[5:])
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(z.Len()))
		_, _ = w.Write(z.Bytes())
	}))
	t.Cleanup(srv.Close)
	var dials, nexts atomic.Int32
	var d net.Dialer
	pt := &pollTransport{gzip: true, next: &countingTransport{Transport: &http.Transport{}, n: &nexts},
		dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			return d.DialContext(ctx, network, addr)
		}}
	t.Cleanup(pt.CloseIdleConnections)
	hc := &http.Client{Transport: pt}
	for n, do := range []string{"", "", "chunked", "plain", "", "chunked", ""} {
		resp, err := hc.Get(srv.URL + "/v1/poll?n=" + strconv.Itoa(n) + "&do=" + do)
		if err != nil {
			t.Fatalf("poll %d: %v", n, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := strings.Repeat("answer "+strconv.Itoa(n)+" ", 40); err != nil || string(b) != want {
			t.Fatalf("poll %d (%q): %q, %v; want %q", n, do, b, err, want)
		}
		if zipped := do != "plain"; resp.Uncompressed != zipped || resp.Header.Get("Content-Encoding") != "" ||
			zipped && (resp.ContentLength != -1 || resp.Header.Get("Content-Length") != "") {
			t.Fatalf("poll %d (%q): Uncompressed %v, Content-Encoding %q, length %d %q", n, do, resp.Uncompressed,
				resp.Header.Get("Content-Encoding"), resp.ContentLength, resp.Header.Get("Content-Length"))
		}
	}
	if dials.Load() != 1 || nexts.Load() != 0 {
		t.Fatalf("%d dials and %d polls through next, want 1 and 0", dials.Load(), nexts.Load())
	}
}

// countingTransport counts the requests it carries.
type countingTransport struct {
	*http.Transport
	n *atomic.Int32
}

func (c *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.Transport.RoundTrip(req)
}

// TestPlainAnswer: the heads the poll transport parses itself are 200s
// with one valid Content-Length and no transfer or content encoding;
// Connection: close is noted.
func TestPlainAnswer(t *testing.T) {
	for _, c := range []struct {
		head    string
		n       int64
		closing bool
		ok      bool
		gzipped bool
	}{
		{"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 42\r\nDate: x\r\n", 42, false, true, false},
		{"HTTP/1.1 200 OK\r\ncontent-length:0\r\nConnection: Close\r\n", 0, true, true, false},
		{"HTTP/1.1 200\r\nContent-Length: 7\r\n", 7, false, true, false},
		{"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n", 0, false, false, false},               // no length
		{"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n", 0, false, false, false}, // two
		{"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n", 0, false, false, false},                     // negative
		{"HTTP/1.1 200 OK\r\nContent-Length: 12x\r\n", 0, false, false, false},                    // not a number
		{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n", 0, false, false, false},
		{"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 5\r\n", 5, false, true, true},
		{"HTTP/1.1 200 OK\r\nContent-Encoding: GZIP\r\nContent-Length: 5\r\nVary: Accept-Encoding\r\n", 5, false, true, true},
		{"HTTP/1.1 200 OK\r\nContent-Encoding: br\r\nContent-Length: 5\r\n", 0, false, false, false},
		{"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Encoding: gzip\r\nContent-Length: 5\r\n", 0, false, false, false}, // twice
		{"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n", 0, false, false, false},
		{"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n", 0, false, false, false},
		{"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n", 0, false, false, false},
		{"HTTP/1.1 200 OK\r\nno colon here\r\nContent-Length: 1\r\n", 0, false, false, false},
		{"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n", 0, false, false, false},                // a sign
		{"HTTP/1.1 200 OK\nContent-Length: 5\r\n", 0, false, false, false},                   // a bare LF
		{"HTTP/1.1 200 OK\r\nX-A: 1\nContent-Length: 5\r\n", 0, false, false, false},         // a bare LF
		{"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n X-Folded: 1\r\n", 0, false, false, false}, // a folded line
	} {
		n, closing, gzipped, ok := plainAnswer([]byte(c.head))
		if ok != c.ok || ok && (n != c.n || closing != c.closing || gzipped != c.gzipped) {
			t.Errorf("plainAnswer(%q) = %d, %v, %v, %v; want %d, %v, %v, %v", c.head, n, closing, gzipped, ok, c.n, c.closing, c.gzipped, c.ok)
		}
	}
}

// A poll's request target is what url.URL.RequestURI gives, whatever
// the URL.
func TestAppendRequestURI(t *testing.T) {
	for _, s := range []string{
		"http://h/v1/poll?rooms=a%2Cb&cursor=x&token=t",
		"http://h/v1/poll",
		"http://h/v1/poll?",
		"http://h",
		"http://h/a%2Fb/poll?q=1",
		"http://h/sp ace/poll?q",
		"mailto:someone@example.com",
		"http:opaque/path?x=1",
		"http://h//double?x",
	} {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := string(appendRequestURI([]byte("GET "), u)), "GET "+u.RequestURI(); got != want {
			t.Errorf("%q: got %q, want %q", s, got, want)
		}
	}
}
