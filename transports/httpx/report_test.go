package httpx

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/core/protocol"
)

// reports is a Reporter that keeps what it is told.
type reports struct {
	mu     sync.Mutex
	errors []string // "user code"
	rtts   []string // "tier rtt"
}

func (r *reports) RequestError(user, code string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errors = append(r.errors, user+" "+code)
}

func (r *reports) ClientRTT(transport string, rtt time.Duration) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rtts = append(r.rtts, fmt.Sprint(transport, " ", rtt))
	return true
}

func (r *reports) take() (errs, rtts []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	errs, rtts = r.errors, r.rtts
	r.errors, r.rtts = nil, nil
	return errs, rtts
}

// Every error WriteError answers under Report is reported once, with the
// user the request proved by then (through Require, or a handler's own
// IdentifyStream) and "" before; the access log's writer in between does
// not hide it; a valid X-Chat-RTT is reported, anything else is not.
func TestReportErrorsAndRoundTrips(t *testing.T) {
	v, err := auth.NewVerifier(auth.Config{})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := v.IssueDev("alice", false, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	a := &Authenticator{Verifier: v, Tickets: auth.NewTickets(nil, time.Minute, nil)}
	rep := &reports{}
	log := NewAccessLog(AccessLogConfig{})
	mux := http.NewServeMux()
	mux.Handle("/rest", a.Require(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		WriteError(w, protocol.Errorf(protocol.CodeForbidden, "no"))
	})))
	mux.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
		if _, err := a.IdentifyStream(r); err != nil {
			WriteError(w, err)
			return
		}
		WriteError(w, protocol.Errorf(protocol.CodeTooManyRooms, "too many"))
	})
	mux.HandleFunc("/ok", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	h := Report(rep)(log.Middleware(mux))

	for _, tc := range []struct {
		path, auth, rtt string
		errs, rtts      []string
	}{
		{"/rest", "Bearer " + tok, "", []string{"alice forbidden"}, nil},
		{"/rest", "", "", []string{" unauthorized"}, nil},
		{"/stream?token=" + tok, "", "sse=84", []string{"alice too_many_rooms"}, []string{"sse 84ms"}},
		{"/stream", "", "poll=12.5", []string{" unauthorized"}, []string{"poll 12.5ms"}},
		{"/ok", "", "websocket=300", nil, []string{"websocket 300ms"}},
		{"/ok", "", "carrier-pigeon=300", nil, nil},
		{"/ok", "", "sse=-1", nil, nil},
		{"/ok", "", "sse=NaN", nil, nil},
		{"/ok", "", "sse=" + strings.Repeat("9", 40), nil, nil},
		{"/ok", "", "300", nil, nil},
	} {
		req := httptest.NewRequest(http.MethodGet, tc.path, nil)
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		if tc.rtt != "" {
			req.Header.Set(HeaderRTT, tc.rtt)
		}
		h.ServeHTTP(httptest.NewRecorder(), req)
		errs, rtts := rep.take()
		if !slices.Equal(errs, tc.errs) || !slices.Equal(rtts, tc.rtts) {
			t.Errorf("%s (rtt %q): errors %q, round trips %q; want %q, %q", tc.path, tc.rtt, errs, rtts, tc.errs, tc.rtts)
		}
	}
	// Without Report above, WriteError writes as before and tells no one.
	rec := httptest.NewRecorder()
	WriteError(rec, protocol.Errorf(protocol.CodeRateLimited, "slow down"))
	if rec.Code != http.StatusTooManyRequests {
		t.Fatalf("status %d without a Reporter", rec.Code)
	}
}

// Report's writer keeps Flush and Hijack: event streams and WebSocket
// upgrades pass through it.
func TestReportWriterPassesStreamsThrough(t *testing.T) {
	hijacked := make(chan error, 1)
	srv := httptest.NewServer(Report(&reports{})(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if _, ok := w.(http.Flusher); !ok {
			hijacked <- fmt.Errorf("no Flusher")
			return
		}
		h, ok := w.(http.Hijacker)
		if !ok {
			hijacked <- fmt.Errorf("no Hijacker")
			return
		}
		nc, brw, err := h.Hijack()
		if err == nil {
			_, _ = brw.WriteString("HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
			_ = brw.Flush()
			nc.Close()
		}
		hijacked <- err
	})))
	defer srv.Close()
	nc, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	fmt.Fprintf(nc, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if err := <-hijacked; err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("hijack through Report: %v, status %d", err, resp.StatusCode)
	}
}

// A poll's client key is 1 to 64 letters, digits, '-', '_' or '.';
// anything else is no key.
func TestPollClientKey(t *testing.T) {
	for key, want := range map[string]string{
		"3f2a-b_c.9": "3f2a-b_c.9", "": "", strings.Repeat("k", 64): strings.Repeat("k", 64),
		strings.Repeat("k", 65): "", "a b": "", "tab/1": "", "ключ": "",
	} {
		req := httptest.NewRequest(http.MethodGet, "/v1/poll", nil)
		req.Header.Set(HeaderClient, key)
		if got := ClientKey(req); got != want {
			t.Errorf("ClientKey(%q) = %q, want %q", key, got, want)
		}
	}
}

// FuzzParseRTT: ParseRTT never panics, and what it accepts names a known
// tier and a positive round trip of at most an hour.
func FuzzParseRTT(f *testing.F) {
	for _, s := range []string{"sse=84", "poll=1.5", "websocket=60000", "x=1", "sse=", "=5", "sse=1e9", "sse=-0", "sse=+Inf"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		tier, rtt, ok := ParseRTT(v)
		if !ok {
			if tier != "" || rtt != 0 {
				t.Fatalf("refused %q but returned %q, %v", v, tier, rtt)
			}
			return
		}
		if !rttTiers[tier] || rtt <= 0 || rtt > time.Hour || len(v) > maxRTTHeader {
			t.Fatalf("accepted %q as %q, %v", v, tier, rtt)
		}
	})
}

// TestHeaderKeysCanonical: the keys headers are looked up by are net/http's
// canonical forms of the names the protocol gives, so a lookup finds the
// header and allocates nothing.
func TestHeaderKeysCanonical(t *testing.T) {
	h := http.Header{}
	for name, key := range map[string]string{"Last-Event-ID": lastEventID, HeaderRTT: rttKey} {
		if c := http.CanonicalHeaderKey(name); c != key {
			t.Errorf("%s: key %q, canonical %q", name, key, c)
		}
		h.Set(name, "v")
		if got := h.Get(key); got != "v" {
			t.Errorf("%s set, Get(%q) = %q", name, key, got)
		}
		if n := testing.AllocsPerRun(100, func() { _ = h.Get(key) }); n != 0 {
			t.Errorf("Get(%q): %.0f allocations", key, n)
		}
	}
}

// statusRecorder keeps the status written through it.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.code = code
	s.ResponseWriter.WriteHeader(code)
}

// TestGoneClientIsNotAServerError has a client give up on its request
// while the handler waits (a send waiting for its ack on a node behind):
// the error of the request's cancelled context, wrapped as the hub wraps
// it, is answered StatusClientGone and reported to no one, where it was
// answered 500 and reported internal. Over real HTTP: net/http cancels
// the context when the client goes.
func TestGoneClientIsNotAServerError(t *testing.T) {
	rep := &reports{}
	entered := make(chan struct{})
	status := make(chan int, 1)
	h := Report(rep)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-r.Context().Done()
		WriteError(w, fmt.Errorf("core: send: %w", r.Context().Err()))
	}))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w}
		h.ServeHTTP(rec, r)
		status <- rec.code
	}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		resp, err := srv.Client().Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	<-entered
	cancel()
	if err := <-done; err == nil {
		t.Fatal("the request was answered before its client went")
	}
	if code := <-status; code != StatusClientGone {
		t.Fatalf("status %d, want %d", code, StatusClientGone)
	}
	if errs, _ := rep.take(); len(errs) != 0 {
		t.Fatalf("reported %q", errs)
	}
}

// TestWriteErrorKeepsCodedCancellations: only an error without a wire
// code is taken for the client gone; one with a code keeps its status,
// Retry-After and report whatever its cause, and a deadline is no
// client's going.
func TestWriteErrorKeepsCodedCancellations(t *testing.T) {
	rep := &reports{}
	for _, tc := range []struct {
		err    error
		status int
		report []string
	}{
		{fmt.Errorf("store: %w", context.Canceled), StatusClientGone, nil},
		{&protocol.Error{Code: protocol.CodeUnavailable, Message: "engine down", Cause: context.Canceled}, http.StatusServiceUnavailable, []string{" unavailable"}},
		{context.DeadlineExceeded, http.StatusInternalServerError, []string{" internal"}},
	} {
		rec := httptest.NewRecorder()
		Report(rep)(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { WriteError(w, tc.err) })).
			ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/send", nil))
		errs, _ := rep.take()
		if rec.Code != tc.status || !slices.Equal(errs, tc.report) {
			t.Errorf("%v: status %d, reported %q; want %d, %q", tc.err, rec.Code, errs, tc.status, tc.report)
		}
		if tc.status == StatusClientGone && rec.Body.Len() != 0 {
			t.Errorf("%v: a body of %d bytes", tc.err, rec.Body.Len())
		}
		if tc.status == http.StatusServiceUnavailable && rec.Header().Get("Retry-After") == "" {
			t.Errorf("%v: no Retry-After", tc.err)
		}
	}
}

// causes is a reports that is also a CauseLogger.
type causes struct {
	reports
	logged []string // "user err"
}

func (c *causes) InternalError(user string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.logged = append(c.logged, user+" "+err.Error())
}

// TestInternalCauseLogged: an error answered internal has its cause told,
// with the request's user, to a Reporter that logs causes (the answer
// shows only "internal error"); a coded error's is not, nor a gone
// client's.
func TestInternalCauseLogged(t *testing.T) {
	rep := &causes{}
	for _, err := range []error{
		errors.New("disk on fire"),
		&protocol.Error{Code: protocol.CodeInternal, Message: "internal error", Cause: errors.New("bucket gone")},
		protocol.Errorf(protocol.CodeForbidden, "no"),
		fmt.Errorf("send: %w", context.Canceled),
	} {
		rec := httptest.NewRecorder()
		Report(rep)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ReportUser(r, "erin")
			WriteError(w, err)
		})).ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/send", nil))
		if body := rec.Body.String(); strings.Contains(body, "disk") || strings.Contains(body, "bucket") {
			t.Fatalf("the answer shows the cause: %s", body)
		}
	}
	rep.mu.Lock()
	defer rep.mu.Unlock()
	want := []string{"erin disk on fire", "erin internal: internal error: bucket gone"}
	if !slices.Equal(rep.logged, want) {
		t.Fatalf("logged %q, want %q: the internal errors' causes only", rep.logged, want)
	}
}

// On a lane, where Report puts its writer on the connection rather than
// in a new context, each request's errors are reported with the user
// that request proved (through the writer on the connection), or none.
func TestReportOnLane(t *testing.T) {
	v, err := auth.NewVerifier(auth.Config{})
	if err != nil {
		t.Fatal(err)
	}
	token := func(user string) string {
		tok, err := v.IssueDev(user, false, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	a := &Authenticator{Verifier: v, Tickets: auth.NewTickets(nil, time.Minute, nil)}
	rep := &reports{}
	lane := NewLane("/poll")
	mux := http.NewServeMux()
	mux.HandleFunc("GET /poll", func(w http.ResponseWriter, r *http.Request) {
		if _, err := a.IdentifyRepeated(r); err != nil {
			WriteError(w, err)
			return
		}
		if r.URL.Query().Get("fail") != "" {
			WriteError(w, protocol.Errorf(protocol.CodeTooManyRooms, "too many"))
			return
		}
		w.Header().Set("Content-Length", "2")
		_, _ = w.Write([]byte("ok"))
		lane.Take(w, r)
	})
	addr := ServeLaneTest(t, lane, &http.Server{Handler: Report(rep)(mux), ReadHeaderTimeout: 5 * time.Second, ConnContext: KeepConn})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	alice, bob := token("alice"), token("bob")
	for i, tc := range []struct {
		query string
		code  int
		errs  []string
	}{
		{"token=" + alice, 200, nil}, // taken over by the lane from here
		{"token=" + alice + "&fail=1", 409, []string{"alice too_many_rooms"}},
		{"fail=1", 401, []string{" unauthorized"}},
		{"token=" + bob + "&fail=1", 409, []string{"bob too_many_rooms"}},
		{"token=" + bob, 200, nil},
	} {
		if _, err := fmt.Fprintf(c, "GET /poll?%s HTTP/1.1\r\nHost: x\r\n\r\n", tc.query); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d: %v", i+1, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		errs, _ := rep.take()
		if resp.StatusCode != tc.code || !slices.Equal(errs, tc.errs) {
			t.Fatalf("request %d: %d, errors %q; want %d, %q", i+1, resp.StatusCode, errs, tc.code, tc.errs)
		}
	}
	if lane.Served() < 4 {
		t.Fatalf("the lane served %d requests, want the last 4", lane.Served())
	}
	// Between requests the connection holds no request's writer (and
	// what it holds on to): the lane lets go of it after each. Read under
	// the lane's lock, which the connection takes once it waits for its
	// next request.
	idle := func() (bool, *reportWriter) {
		lane.mu.Lock()
		defer lane.mu.Unlock()
		for lc := range lane.conns {
			if lc.busy {
				return false, nil
			}
			return true, lc.report // the lane's goroutine set busy false, under mu, after its last request
		}
		return false, nil
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		ok, rw := idle()
		if ok {
			if rw != nil {
				t.Fatalf("an idle lane connection still holds its last request's report writer")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the lane connection did not go idle")
		}
		time.Sleep(2 * time.Millisecond)
	}
}
