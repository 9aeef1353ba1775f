package httpx

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/net/http/httpguts"

	"github.com/chatd/chatd/core/protocol"
)

// FuzzParseSubscription feeds arbitrary rooms=, since=, cursor= and
// Last-Event-ID to ParseSubscription. It must never panic, and:
//   - a refusal is a wire error (bad_request, too_many_rooms or forbidden)
//     and returns nothing else;
//   - an answer has 1 to maxRooms distinct, valid, accessible rooms; every
//     position is for one of them; fresh rooms have a position; fresh is
//     nil when Last-Event-ID decided;
//   - since= longer than its bound, or with more pairs than maxRooms, is
//     always refused.
func FuzzParseSubscription(f *testing.F) {
	const maxRooms = 3
	cur := protocol.Cursor{"a": 1, "b": 2}.Encode()
	for _, seed := range [][4]string{
		{"a", "", "", ""},
		{"a,b", "a:1,b:2", "", ""},
		{"a,b", "a:1", cur, ""},
		{"a", "", "", cur},
		{"a,b,c,d", "", "", ""},
		{"dm:alice:bob,a", "dm:alice:bob:3", "", ""},
		{"dm:bob:carol", "", "", ""},
		{"a", "b:1", "", ""},
		{"a,b,c", "a:1,b:1,c:1,a:2", "", ""},
		{"a", "a:1,", "", ""},
		{"a", ":1", "", ""},
		{"a", "a:18446744073709551616", "", ""},
		{"a", "", "AQ", ""},
		{"", "", "", ""},
		{",,,", "", "", ""},
		{"é,\u202e", "é:0", "", ""},
	} {
		f.Add(seed[0], seed[1], seed[2], seed[3])
	}
	f.Fuzz(func(t *testing.T, rooms, since, cursor, lastID string) {
		q := url.Values{"rooms": {rooms}, "since": {since}, "cursor": {cursor}}
		r := httptest.NewRequest(http.MethodGet, "/v1/poll?"+q.Encode(), nil)
		r.Header["Last-Event-Id"] = []string{lastID}
		got, cur, fresh, err := ParseSubscription(r, alice, maxRooms)
		if err != nil {
			var pe *protocol.Error
			if !errors.As(err, &pe) || (pe.Code != protocol.CodeBadRequest && pe.Code != protocol.CodeTooManyRooms && pe.Code != protocol.CodeForbidden) {
				t.Fatalf("refusal %v is not a wire error of the expected codes", err)
			}
			if got != nil || cur != nil || fresh != nil {
				t.Fatalf("refused with %v, yet returned %v %v %v", err, got, cur, fresh)
			}
			return
		}
		if len(got) == 0 || len(got) > maxRooms {
			t.Fatalf("%d rooms", len(got))
		}
		set := map[string]bool{}
		for _, room := range got {
			if set[room] || protocol.ValidRoom(room) != nil || alice.CanAccess(room) != nil {
				t.Fatalf("room %q repeated, invalid or forbidden", room)
			}
			set[room] = true
		}
		for room := range cur {
			if !set[room] {
				t.Fatalf("a position for %q, which is not subscribed", room)
			}
		}
		for room := range fresh {
			if _, ok := cur[room]; !ok {
				t.Fatalf("fresh room %q has no position", room)
			}
		}
		if lastID != "" && fresh != nil {
			t.Fatalf("Last-Event-ID decided, yet fresh is %v", fresh)
		}
		if lastID == "" && since != "" && (len(since) > maxSinceLen(maxRooms) || len(fresh) > maxRooms) {
			t.Fatalf("since= of %d bytes accepted", len(since))
		}
	})
}

// FuzzQueryParams checks queryParams against url.ParseQuery and
// url.Values.Get on any raw query of up to 10,000 pairs (url.ParseQuery's
// own limit): the same value for every name it is asked for, whatever
// the semicolons, escapes, repeats and empty pairs.
func FuzzQueryParams(f *testing.F) {
	for _, seed := range []string{
		"rooms=a,b&cursor=a:1&since=b:2",
		"rooms=a&rooms=b",
		"rooms=%zz&rooms=b",
		"rooms;=a&rooms=b",
		"ro%6Fms=a",
		"rooms=a+b%2Cc&token=x%3D",
		"&&rooms&=&ticket=t&ticket=u",
		"cursor=a%3A1%2Cb%3A2",
		"rooms=a;b&rooms=c",
		"=x&rooms=",
	} {
		f.Add(seed)
	}
	names := []string{"rooms", "cursor", "since", "ticket", "token"}
	f.Fuzz(func(t *testing.T, raw string) {
		if strings.Count(raw, "&") >= 10000 {
			return
		}
		q, _ := url.ParseQuery(raw)
		got := make([]string, len(names))
		queryParams(raw, names, got)
		for i, name := range names {
			if want := q.Get(name); got[i] != want {
				t.Fatalf("%q: %s = %q, url.Values.Get says %q", raw, name, got[i], want)
			}
			if v := QueryValue(raw, name); v != got[i] {
				t.Fatalf("%q: QueryValue(%s) = %q, queryParams says %q", raw, name, v, got[i])
			}
		}
		s := parseStreamQuery(raw)
		if s.rooms != got[0] || s.cursor != got[1] || s.since != got[2] {
			t.Fatalf("%q: parseStreamQuery %+v, queryParams %q", raw, s, got[:3])
		}
	})
}

// fuzzKey marks the context FuzzLaneHead gives the lane's parser.
type fuzzKey struct{}

// FuzzLaneHead feeds arbitrary request heads to a Lane's parser. It must
// never panic, and a head it serves must be one net/http reads the same
// way: a GET of the lane's route in HTTP/1.1, one Host of plain
// characters, no body and nothing after the head; its method, target,
// host, headers, URL and the rest a handler may read as
// http.ReadRequest gives them, with the context the lane gave it.
func FuzzLaneHead(f *testing.F) {
	for _, s := range []string{
		"GET /poll?rooms=a&cursor=AQ HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /poll HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\nAccept-Encoding: gzip\r\n\r\n",
		"GET /poll HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n",
		"GET /poll HTTP/1.1\r\n\r\n",
		"GET /poll HTTP/1.0\r\nHost: x\r\n\r\n",
		"GET /poll HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n",
		"GET /poll HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
		"GET http://x/poll HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /poll HTTP/1.1\r\nHost: x\r\n Folded: y\r\n\r\n",
		"GET /pollx HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /poll HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /poll HTTP/1.1\r\nHost: x\r\n\r\nGET /poll HTTP/1.1\r\n",
		"GET /poll HTTP/1.1\nHost: x\n\n",
		"GET /poll? HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /poll?a?b HTTP/1.1\r\nhost: x:1\r\nx-a:\tv \t\r\nX-A: w\r\naccept: *\r\n\r\n",
		"GET /poll?a\tb HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /poll?a#b HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /poll HTTP/1.1\r\nHost: x\r\nX: a\nY: b\r\n\r\n",
		"GET /poll HTTP/1.1\r\nHost: x\r\nX : a\r\n\r\n",
		"GET /poll HTTP/1.1\r\nHost: x\r\nContent-Length : 1\r\n\r\n",
		"GET /poll HTTP/1.1\r\nHost: x\r\nX Y: b\r\n\r\n",
		"GET /poll HTTP/1.1\r\nHost: x\r\nPragma: no-cache\r\n\r\n",
		"GET /poll HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
		"GET /p%6Fll HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /poll HTTP/1.1\r\nHost: x\r\nfoo_bar-baz: 1\r\nuser-agent: Go\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	l := NewLane("/poll")
	s := &laneServer{maxHead: 4096}
	f.Fuzz(func(t *testing.T, head []byte) {
		ctx := context.WithValue(context.Background(), fuzzKey{}, head)
		req, _ := l.parse(ctx, s, new(bytes.Reader), head)
		if req == nil {
			return
		}
		if req.Context() != ctx {
			t.Fatalf("served %q without its context", head)
		}
		if req.Method != http.MethodGet || req.URL.Path != "/poll" || req.ProtoMajor != 1 || req.ProtoMinor != 1 ||
			req.ContentLength != 0 || len(req.TransferEncoding) != 0 || req.Close && req.Header.Get("Connection") == "" {
			t.Fatalf("served %q: %s %s %d.%d length %d", head, req.Method, req.URL, req.ProtoMajor, req.ProtoMinor, req.ContentLength)
		}
		if !bytes.HasSuffix(head, []byte("\r\n\r\n")) || bytes.Count(head, []byte("\r\n\r\n")) != 1 {
			t.Fatalf("served %q, which is not one head", head)
		}
		want, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(head)))
		if err != nil {
			t.Fatalf("served %q, which net/http refuses: %v", head, err)
		}
		// What net/http's server refuses past ReadRequest (its
		// readRequest): a Host that is not one, header names that are not
		// tokens, values with controls.
		if !httpguts.ValidHostHeader(want.Host) {
			t.Fatalf("served %q, whose Host net/http's server refuses", head)
		}
		for name, values := range want.Header {
			if !httpguts.ValidHeaderFieldName(name) {
				t.Fatalf("served %q, whose header name %q net/http's server refuses", head, name)
			}
			for _, v := range values {
				if !httpguts.ValidHeaderFieldValue(v) {
					t.Fatalf("served %q, whose value %q net/http's server refuses", head, v)
				}
			}
		}
		if want.RequestURI != req.RequestURI || want.Host != req.Host || !reflect.DeepEqual(want.Header, req.Header) {
			t.Fatalf("served %q as %q %q %v; net/http reads %q %q %v", head, req.RequestURI, req.Host, req.Header,
				want.RequestURI, want.Host, want.Header)
		}
		// The rest of what a handler may look at, as net/http has it.
		if want.Method != req.Method || want.Proto != req.Proto || !reflect.DeepEqual(want.URL, req.URL) ||
			want.Close != req.Close || want.ContentLength != req.ContentLength || want.Body != req.Body ||
			!reflect.DeepEqual(want.TransferEncoding, req.TransferEncoding) || !reflect.DeepEqual(want.Trailer, req.Trailer) ||
			want.Form != nil || req.Form != nil || req.GetBody != nil || req.Response != nil {
			t.Fatalf("served %q as %s %s %#v close=%v length %d body %T; net/http reads %s %s %#v close=%v length %d body %T",
				head, req.Method, req.Proto, req.URL, req.Close, req.ContentLength, req.Body,
				want.Method, want.Proto, want.URL, want.Close, want.ContentLength, want.Body)
		}
	})
}

// TestQuickRequest pins which heads the lane reads without
// http.ReadRequest (FuzzLaneHead holds what it builds to net/http's):
// the Go client's and a browser's polls do; anything net/http reads
// another way, or refuses, does not.
func TestQuickRequest(t *testing.T) {
	l := NewLane("/poll")
	ctx := context.Background()
	quick := func(head string) *http.Request { // as parse calls it
		route, _ := l.names([]byte(head))
		return quickRequest(ctx, []byte(head), route)
	}
	for _, head := range []string{
		"GET /poll?rooms=a&cursor=AQ&token=x.y.z HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: chatload\r\n\r\n",
		"GET /poll?rooms=a%2Cb HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\nAccept-Encoding: gzip\r\n\r\n",
		"GET /poll HTTP/1.1\r\nHost: chat.example\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\nAccept: */*\r\n" +
			"Accept-Language: en-GB,en;q=0.9\r\nReferer: http://chat.example/\r\nSec-Fetch-Mode: cors\r\nCookie: a=b; c=d\r\n\r\n",
		"GET /poll? HTTP/1.1\r\nhost: x\r\nx-a: 1\r\nX-A:\t2 \r\n\r\n",
	} {
		req := quick(head)
		if req == nil {
			t.Errorf("%q: not read quickly", head)
			continue
		}
		want, err := http.ReadRequest(bufio.NewReader(strings.NewReader(head)))
		if err != nil {
			t.Fatalf("%q: net/http: %v", head, err)
		}
		if !reflect.DeepEqual(req.URL, want.URL) || !reflect.DeepEqual(req.Header, want.Header) || req.Host != want.Host ||
			req.RequestURI != want.RequestURI || req.Context() != ctx {
			t.Errorf("%q: read as %#v %v %q %q; net/http reads %#v %v %q %q", head,
				req.URL, req.Header, req.Host, req.RequestURI, want.URL, want.Header, want.Host, want.RequestURI)
		}
	}
	for _, head := range []string{
		"GET /p%6Fll HTTP/1.1\r\nHost: x\r\n\r\n",                    // an escaped path
		"GET /pollx HTTP/1.1\r\nHost: x\r\n\r\n",                     // not a route
		"GET /poll HTTP/1.0\r\nHost: x\r\n\r\n",                      // HTTP/1.0
		"GET /poll?a\tb HTTP/1.1\r\nHost: x\r\n\r\n",                 // a control
		"GET /poll?a#b HTTP/1.1\r\nHost: x\r\n\r\n",                  // a fragment mark
		"GET /poll HTTP/1.1\r\n\r\n",                                 // no Host
		"GET /poll HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n",           // two
		"GET /poll HTTP/1.1\r\nHost: x\r\nX: a\nY: b\r\n\r\n",        // a bare LF
		"GET /poll HTTP/1.1\r\nHost: x\r\n Folded: y\r\n\r\n",        // a fold
		"GET /poll HTTP/1.1\r\nHost: x\r\nX : a\r\n\r\n",             // a space before the colon
		"GET /poll HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", // net/http's close rules
		"GET /poll HTTP/1.1\r\nHost: x\r\nPragma: no-cache\r\n\r\n",  // net/http adds Cache-Control
		"GET /poll HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", // a body's length
		"GET /poll HTTP/1.1\r\nHost: x\r\nHost2: " + strings.Repeat("a", 3) + "\r\n" + strings.Repeat("A: 1\r\n", maxQuickHeaders) + "\r\n", // too many lines
	} {
		if req := quick(head); req != nil {
			t.Errorf("%q: read quickly", head)
		}
	}
}

// BenchmarkQuickRequest reads the head of the Go client's poll as a lane
// does, quickly and through http.ReadRequest.
func BenchmarkQuickRequest(b *testing.B) {
	l := NewLane("/poll")
	head := []byte("GET /poll?rooms=lobby&cursor=AQIDBAUGBwgJCgsMDQ4PEA&token=eyJhbGciOiJIUzI1NiJ9." +
		strings.Repeat("x", 160) + ".sig HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: chatload\r\nX-Chat-Client: c1\r\n\r\n")
	s := &laneServer{maxHead: 4096}
	ctx := context.Background()
	b.Run("quick", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if req, _ := l.parse(ctx, s, new(bytes.Reader), head); req == nil {
				b.Fatal("not served")
			}
		}
	})
	b.Run("ReadRequest", func(b *testing.B) {
		b.ReportAllocs()
		hr := new(bytes.Reader)
		for b.Loop() {
			hr.Reset(head)
			req, err := http.ReadRequest(bufio.NewReader(hr))
			if err != nil {
				b.Fatal(err)
			}
			_ = req.WithContext(ctx)
		}
	})
}
