package transporttest

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chatd/chatd/transports/httpx"
)

// A stream request (a poll, an SSE stream, a WebSocket upgrade) whose
// client has closed its connection by the time the node reads it joins
// nothing. A client that stops such a request so as to leave a room, and
// then posts the leave on another connection, would otherwise see the
// room listed again whenever the node read the stopped request after the
// leave. The control, the same request from a client that stays, lists
// the room.
func TestStoppedRequestJoinsNothing(t *testing.T) {
	type hold struct {
		lane bool          // the lane serves the request
		stop chan bool     // the test's word: the client has closed (true) or stays
		done chan struct{} // closed when the node's handler has returned
	}
	held := make(chan hold)
	wrap := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("X-Test-Hold") == "" {
				next.ServeHTTP(w, r)
				return
			}
			h := hold{lane: httpx.InLane(r), stop: make(chan bool), done: make(chan struct{})}
			defer close(h.done)
			held <- h
			if <-h.stop {
				// The premise: the client's close has reached the node
				// before the handler runs (on loopback it has, or all but).
				for deadline := time.Now().Add(5 * time.Second); !httpx.ClientGone(r); {
					if time.Now().After(deadline) {
						t.Error("the node never saw the client close")
						break
					}
					time.Sleep(time.Millisecond)
				}
			}
			next.ServeHTTP(w, r)
		})
	}
	// Polls held 50 ms, so that a poll with nothing to say is answered,
	// and kept, soon.
	e := NewEnv(t, Options{Wrap: wrap, PollHold: 50 * time.Millisecond})
	for _, tc := range []struct {
		name, path, extra string
		kept              bool // the request comes on a poll connection the lane has taken over
	}{
		{name: "poll", path: "/v1/poll"},
		{name: "poll on the lane", path: "/v1/poll", kept: true},
		{name: "sse", path: "/v1/sse"},
		{name: "websocket", path: "/v1/ws", extra: "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.kept && !peeks() {
				t.Skip("the lane's requests are told gone only by the peek, not built for " + runtime.GOOS)
			}
			for _, stop := range []bool{false, true} {
				user := strings.ReplaceAll(tc.name, " ", "-") + "-stays"
				if stop {
					user = strings.ReplaceAll(tc.name, " ", "-") + "-stops"
				}
				tok := e.Token(t, user, Claims{})
				conn, err := net.Dial("tcp", strings.TrimPrefix(e.URL, "http://"))
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				br := bufio.NewReader(conn)
				if tc.kept {
					keptPoll(t, conn, br, tok)
				}
				req := "GET " + tc.path + "?rooms=general HTTP/1.1\r\nHost: chat\r\nAuthorization: Bearer " + tok +
					"\r\nX-Test-Hold: 1\r\n" + tc.extra + "\r\n"
				if _, err := conn.Write([]byte(req)); err != nil {
					t.Fatal(err)
				}
				h := <-held // the node has read the request, and holds it
				if h.lane != tc.kept {
					t.Fatalf("%s: served by the lane %v, want %v", tc.path, h.lane, tc.kept)
				}
				if stop {
					conn.Close()
				}
				h.stop <- stop
				if stop {
					<-h.done
					if got := roomNames(roomsOf(t, e, tok)); slices.Contains(got, "general") {
						t.Fatalf("%s stopped by its client before it was served: rooms %v, want general not listed", tc.path, got)
					}
					continue
				}
				// The control: the node answers (a poll's answer, the
				// stream's head, the 101), and lists the room.
				line, err := br.ReadString('\n')
				if err != nil || !strings.HasPrefix(line, "HTTP/1.1 ") {
					t.Fatalf("%s: %q, %v", tc.path, line, err)
				}
				for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
					got := roomNames(roomsOf(t, e, tok))
					if slices.Contains(got, "general") {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("%s from a client that stays: rooms %v, want general listed", tc.path, got)
					}
				}
			}
		})
	}
}

// keptPoll makes two polls of room "lobby" on conn, the second from the
// first's cursor: once it is answered, its session is kept and the lane
// has the connection.
func keptPoll(t *testing.T, conn net.Conn, br *bufio.Reader, tok string) {
	t.Helper()
	cursor := ""
	for i := range 2 {
		q := "rooms=lobby"
		if i > 0 {
			q += "&cursor=" + url.QueryEscape(cursor)
		}
		req := "GET /v1/poll?" + q + " HTTP/1.1\r\nHost: chat\r\nAuthorization: Bearer " + tok + "\r\n\r\n"
		if _, err := conn.Write([]byte(req)); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		var answer struct{ Cursor string }
		if err == nil {
			err = json.Unmarshal(body, &answer)
		}
		if err != nil || resp.StatusCode != http.StatusOK || answer.Cursor == "" {
			t.Fatalf("poll %d: %d %s, %v", i+1, resp.StatusCode, body, err)
		}
		cursor = answer.Cursor
	}
}

// peeks reports whether httpx.ClientGone can peek at a connection on
// this system (gone_unix.go's build constraint).
func peeks() bool {
	switch runtime.GOOS {
	case "linux", "darwin", "dragonfly", "freebsd", "netbsd", "openbsd":
		return true
	}
	return false
}
