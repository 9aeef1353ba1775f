package httpx_test

import (
	"fmt"
	"io"
	"log"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chatd/chatd/transports/httpx"
)

// keepServer serves, behind lane.Keep, a lane route (/read, answered
// with whether the lane served it) and routes whose answers Keep must or
// must not take: a whole JSON answer (/json), a file (/file, copied by
// http.ServeContent through the writer's ReadFrom), a chunked one (/chunked),
// one shorter than its Content-Length (/short), one with no body
// (/empty), a hijacked one (/hijack), and a POST with a body (/send).
func keepServer(t *testing.T) (string, *httpx.Lane) {
	t.Helper()
	lane := httpx.NewLane("/read")
	mux := http.NewServeMux()
	mux.HandleFunc("GET /read", func(w http.ResponseWriter, r *http.Request) {
		httpx.WriteJSON(w, http.StatusOK, map[string]any{"lane": httpx.InLane(r), "q": r.URL.RawQuery})
	})
	mux.HandleFunc("GET /json", func(w http.ResponseWriter, r *http.Request) {
		httpx.WriteJSON(w, http.StatusOK, map[string]string{"q": r.URL.RawQuery})
	})
	mux.HandleFunc("GET /file", func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "f.txt", time.Time{}, strings.NewReader("a file's body")) // copies through ReadFrom
	})
	mux.HandleFunc("GET /chunked", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "part one ")
		http.NewResponseController(w).Flush()
		_, _ = io.WriteString(w, "part two")
	})
	mux.HandleFunc("GET /short", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Length", "10")
		_, _ = io.WriteString(w, "five!")
	})
	mux.HandleFunc("GET /empty", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /hijack", func(w http.ResponseWriter, _ *http.Request) {
		nc, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		_, _ = io.WriteString(nc, "HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\nhijacked")
		nc.Close()
	})
	mux.HandleFunc("POST /send", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		httpx.WriteJSON(w, http.StatusOK, map[string]string{"sent": string(b)})
	})
	srv := &http.Server{Handler: lane.Keep(mux), ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 30 * time.Second,
		ErrorLog: log.New(io.Discard, "", 0)}
	return httpx.ServeLaneTest(t, lane, srv), lane
}

// TestKeepTakesWholeAnswers: once a whole answer with its Content-Length
// is out, Keep hands the connection to the lane, which serves its own
// routes there and gives any other request back to net/http, every byte
// of it; Keep takes the connection again after that answer.
func TestKeepTakesWholeAnswers(t *testing.T) {
	addr, lane := keepServer(t)
	rc := dialRaw(t, addr)
	if code, body := rc.do(t, get("/json?i=1")); code != 200 || body != `{"q":"i=1"}`+"\n" {
		t.Fatalf("first answer: %d %q", code, body)
	}
	if lane.Kept() != 1 {
		t.Fatalf("kept %d connections, want 1", lane.Kept())
	}
	if _, body := rc.do(t, get("/read?i=2")); body != `{"lane":true,"q":"i=2"}`+"\n" {
		t.Fatalf("a lane route on the kept connection: %q, want it served by the lane", body)
	}
	if code, body := rc.do(t, "POST /send HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"); code != 200 || body != `{"sent":"hello"}`+"\n" {
		t.Fatalf("a send on the kept connection: %d %q", code, body)
	}
	if lane.Returned() != 1 || lane.Kept() != 1 {
		t.Fatalf("returned %d, kept %d after a send with a body; want 1 and 1 (not taken again)", lane.Returned(), lane.Kept())
	}
	if _, body := rc.do(t, get("/json?i=3")); body != `{"q":"i=3"}`+"\n" {
		t.Fatalf("answer after the send: %q", body)
	}
	if lane.Kept() != 2 {
		t.Fatalf("kept %d, want 2: the answer after the send is whole again", lane.Kept())
	}
	if _, body := rc.do(t, get("/json?i=4")); body != `{"q":"i=4"}`+"\n" {
		t.Fatalf("another route on the kept connection: %q", body)
	}
	if lane.Returned() != 2 || lane.Kept() != 3 {
		t.Fatalf("returned %d, kept %d; want 2 and 3: another route goes back, and comes again", lane.Returned(), lane.Kept())
	}
	if code, body := rc.do(t, get("/file")); code != 200 || body != "a file's body" {
		t.Fatalf("file: %d %q", code, body)
	}
	if lane.Kept() != 4 {
		t.Fatalf("kept %d after a file, want 4: its bytes, copied through ReadFrom, are counted", lane.Kept())
	}
}

// TestKeepLeavesOtherAnswers: an answer Keep cannot hand over whole (no
// body, chunked, shorter than its Content-Length, hijacked, a HEAD, a
// request with a body, HTTP/1.0, one that closes) stays with net/http,
// which answers it as ever.
func TestKeepLeavesOtherAnswers(t *testing.T) {
	addr, lane := keepServer(t)
	for _, tc := range []struct{ name, req, want string }{
		{"no body", get("/empty"), ""},
		{"chunked", get("/chunked"), "part one part two"},
		{"head", "HEAD /json HTTP/1.1\r\nHost: x\r\n\r\n", ""},
		{"body", "POST /send HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi", `{"sent":"hi"}` + "\n"},
		{"http/1.0", "GET /json?v=0 HTTP/1.0\r\nHost: x\r\n\r\n", `{"q":"v=0"}` + "\n"},
		{"close", "GET /json?c=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", `{"q":"c=1"}` + "\n"},
		{"hijacked", get("/hijack"), "hijacked"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := dialRaw(t, addr)
			if _, err := io.WriteString(rc.c, tc.req); err != nil {
				t.Fatal(err)
			}
			_ = rc.c.SetReadDeadline(time.Now().Add(10 * time.Second))
			resp, err := http.ReadResponse(rc.br, &http.Request{Method: strings.Fields(tc.req)[0]})
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(b) != tc.want {
				t.Fatalf("body %q, want %q", b, tc.want)
			}
			if lane.Kept() != 0 {
				t.Fatalf("kept %d connections, want none", lane.Kept())
			}
		})
	}
	// Shorter than its Content-Length: net/http ends the connection
	// after the five bytes it has, and Keep leaves it to do so.
	rc := dialRaw(t, addr)
	if _, err := io.WriteString(rc.c, get("/short")); err != nil {
		t.Fatal(err)
	}
	_ = rc.c.SetReadDeadline(time.Now().Add(10 * time.Second)) // a bound on a hang, not a timing
	resp, err := http.ReadResponse(rc.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "five!" || err == nil {
		t.Fatalf("short answer: %q, %v; want five bytes, then the connection cut", b, err)
	}
	if lane.Kept() != 0 {
		t.Fatalf("kept %d connections after a short answer, want none", lane.Kept())
	}
}

// TestKeptConnectionIdlesOut: a connection Keep handed over still closes
// after the server's idle timeout, on the lane.
func TestKeptConnectionIdlesOut(t *testing.T) {
	lane := httpx.NewLane("/read")
	h := lane.Keep(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		httpx.WriteJSON(w, http.StatusOK, fmt.Sprint(httpx.InLane(r)))
	}))
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 200 * time.Millisecond,
		ErrorLog: log.New(io.Discard, "", 0)}
	rc := dialRaw(t, httpx.ServeLaneTest(t, lane, srv))
	if _, body := rc.do(t, get("/json")); body != `"false"`+"\n" {
		t.Fatalf("first answer %q", body)
	}
	if lane.Kept() != 1 {
		t.Fatalf("kept %d, want 1", lane.Kept())
	}
	_ = rc.c.SetReadDeadline(time.Now().Add(20 * time.Second)) // a bound on a hang, not a timing
	if _, err := rc.br.ReadByte(); err != io.EOF {
		t.Fatalf("an idle kept connection: %v, want it closed (EOF)", err)
	}
}

// A nil Lane's Keep is the handler itself.
func TestNilLaneKeep(t *testing.T) {
	var lane *httpx.Lane
	h := http.NotFoundHandler()
	if got := lane.Keep(h); fmt.Sprintf("%p", got) != fmt.Sprintf("%p", h) {
		t.Fatal("a nil Lane's Keep wrapped the handler")
	}
}
