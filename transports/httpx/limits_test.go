package httpx_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chatd/chatd/transports/httpx"
)

// A client that sends Connection: close and a body the handler refuses
// before reading it all gets the whole answer and then the end of the
// stream, never a reset: the server stops writing first and leaves the
// client time to read, as net/http does for a body over its limit. Closing
// at once, with the rest of the body unread, resets the connection, and
// the reset can reach the client before it has read the answer (the 413
// of a send over 64 KiB was lost that way once in a test run).
func TestRefusedBodyEndsWithoutReset(t *testing.T) {
	decode := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var v map[string]any
		if err := httpx.DecodeJSON(w, r, &v); err != nil {
			httpx.WriteError(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	refuse := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusUnauthorized)
	})
	limits := httpx.BodyLimits{Timeout: time.Minute}
	streaming := httpx.BodyLimits{Timeout: time.Minute, Streaming: func(*http.Request) bool { return true }}
	for _, c := range []struct {
		name    string
		handler http.Handler
		status  int
	}{
		{"over the limit", limits.Middleware(decode), http.StatusRequestEntityTooLarge},
		// A wrapper between the server and DecodeJSON, as the access log
		// is, and no BodyLimits: the limit still reaches the server.
		{"over the limit, wrapped", wrap(decode), http.StatusRequestEntityTooLarge},
		{"refused unread", limits.Middleware(refuse), http.StatusUnauthorized},
		{"a streaming route", streaming.Middleware(decode), http.StatusBadRequest},
	} {
		t.Run(c.name, func(t *testing.T) {
			const size = 1 << 20
			srv := httptest.NewServer(c.handler)
			t.Cleanup(srv.Close) // after the connection's own cleanup, which tcpTo registers later
			conn := tcpTo(t, srv)
			// The body goes out from its own goroutine, as an HTTP client's
			// does, while the answer is read here. The server stops reading
			// it at some point, so its writes end with an error.
			wrote := make(chan error, 1)
			go func() {
				head := fmt.Sprintf("POST /v1/send HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", size)
				body := `{"text":"` + strings.Repeat("x", size-11) + `"}`
				_, err := io.Copy(conn, io.MultiReader(strings.NewReader(head), strings.NewReader(body)))
				wrote <- err
			}()
			data, err := io.ReadAll(conn)
			if err != nil {
				t.Fatalf("reading the answer: %v after %d bytes (%q)", err, len(data), data)
			}
			resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(data)), nil)
			if err != nil {
				t.Fatalf("%v: %q", err, data)
			}
			resp.Body.Close()
			if resp.StatusCode != c.status || !resp.Close {
				t.Fatalf("answer %d, close %v; want %d with Connection: close", resp.StatusCode, resp.Close, c.status)
			}
			conn.Close()
			<-wrote
		})
	}
}

// wrap puts a ResponseWriter wrapper that keeps Unwrap, as the access log
// and chi's middleware do, in front of h.
func wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(unwrapper{w}, r)
	})
}

type unwrapper struct{ http.ResponseWriter }

func (u unwrapper) Unwrap() http.ResponseWriter { return u.ResponseWriter }

// A body whose JSON object arrives whole but whose declared rest never
// comes is answered 408 timeout once the body deadline passes, as a body
// that stops inside the object is: the handler does not act on it.
func TestHeldBackBodyTimesOut(t *testing.T) {
	acted := make(chan struct{}, 1)
	decode := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var v map[string]any
		if err := httpx.DecodeJSON(w, r, &v); err != nil {
			httpx.WriteError(w, err)
			return
		}
		acted <- struct{}{}
		w.WriteHeader(http.StatusNoContent)
	})
	srv := httptest.NewServer(httpx.BodyLimits{Timeout: 100 * time.Millisecond}.Middleware(decode))
	t.Cleanup(srv.Close) // after the connection's own cleanup, which tcpTo registers later
	conn := tcpTo(t, srv)
	obj := `{"text":"hi"}`
	if _, err := fmt.Fprintf(conn, "POST /v1/send HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(obj)+100, obj); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(body), `"timeout"`) {
		t.Fatalf("answer %d %s; want 408 timeout", resp.StatusCode, body)
	}
	if len(acted) != 0 {
		t.Fatal("the handler acted on a body that never arrived whole")
	}
}

// tcpTo opens a TCP connection to srv, closed when the test ends, that
// gives up at the test's deadline: a hang fails the test, not the run.
func tcpTo(t *testing.T, srv *httptest.Server) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if d, ok := t.Deadline(); ok {
		_ = conn.SetDeadline(d)
	}
	return conn
}

// TestWriteLimits: an answer whose client stops reading fails once its
// writes have made no progress for the timeout, and the connection
// closes; an answer far longer than the timeout to a client that keeps
// reading goes out whole, in many writes, in one, or through ReadFrom
// (io.Copy) alike.
func TestWriteLimits(t *testing.T) {
	const timeout = time.Second
	const size = 8 << 20
	big := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	failed := make(chan error, 4)
	h := httpx.WriteLimits{Timeout: timeout}.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(size))
		var err error
		switch {
		case r.URL.Query().Has("copy"): // through ReadFrom
			_, err = io.Copy(w, struct{ io.Reader }{bytes.NewReader(big)})
		case r.URL.Query().Has("whole"): // one Write (a bytes.Reader's WriteTo)
			_, err = io.Copy(w, bytes.NewReader(big))
		default:
			for p := big; len(p) > 0 && err == nil; p = p[64<<10:] {
				_, err = w.Write(p[:64<<10])
			}
		}
		failed <- err
	}))
	srv := httptest.NewServer(h)
	defer srv.Close()
	ask := func(path string) (net.Conn, *bufio.Reader) {
		c, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path)
		return c, bufio.NewReaderSize(c, 128<<10)
	}
	for _, path := range []string{"/write", "/write?copy", "/write?whole"} {
		// Read 128 KiB at a time with a pause between: about 1.3 s for the
		// whole answer, more than the timeout.
		c, br := ask(path)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		buf := make([]byte, 128<<10)
		for err == nil {
			var n int
			n, err = io.ReadFull(resp.Body, buf)
			got += n
			time.Sleep(20 * time.Millisecond) // a slow reader, not a synchronisation
		}
		if got != size || (err != io.EOF && err != io.ErrUnexpectedEOF) {
			t.Fatalf("%s to a slow reader: %d bytes of %d, %v", path, got, size, err)
		}
		if err := <-failed; err != nil {
			t.Fatalf("%s to a slow reader: the handler's write failed: %v", path, err)
		}
		c.Close()
	}
	// A client that asks and reads nothing: the handler's write fails
	// and the connection closes.
	c, br := ask("/write")
	if err := <-failed; err == nil {
		t.Fatal("an answer to a client that reads nothing went out whole")
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.Copy(io.Discard, br); err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("the connection of an answer that timed out: %v, want its end", err)
	}
}

// TestWriteLimitsSpareSlowRequests: the write timeout bounds writes that
// make no progress, nothing else. Over HTTP/1.1 and HTTP/2 alike, a body
// that takes longer than the timeout to arrive (an upload) and a handler
// that takes longer than it to answer, with a body or only a head, are
// answered. Over HTTP/2 a deadline set at the request's start reset the
// stream when it passed.
func TestWriteLimitsSpareSlowRequests(t *testing.T) {
	const timeout = 200 * time.Millisecond
	h := httpx.WriteLimits{Timeout: timeout}.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			return
		}
		if r.URL.Query().Has("slow") {
			time.Sleep(3 * timeout) // a slow store, not a synchronisation
		}
		if r.URL.Query().Has("head") {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte("stored"))
	}))
	for _, h2 := range []bool{false, true} {
		srv := httptest.NewUnstartedServer(h)
		srv.EnableHTTP2 = h2
		srv.StartTLS()
		t.Cleanup(srv.Close)
		for _, q := range []string{"?upload", "?slow", "?slow&head"} {
			var body io.Reader = http.NoBody
			if q == "?upload" {
				pr, pw := io.Pipe()
				go func() { // 3 × the timeout of body
					for range 6 {
						time.Sleep(timeout / 2)
						if _, err := pw.Write([]byte(strings.Repeat("x", 1000))); err != nil {
							return
						}
					}
					pw.Close()
				}()
				body = pr
			}
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"/"+q, body)
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatalf("h2=%v %s: %v", h2, q, err)
			}
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || (resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusNoContent) {
				t.Fatalf("h2=%v %s: %s %d, %v", h2, q, resp.Proto, resp.StatusCode, err)
			}
		}
	}
}
