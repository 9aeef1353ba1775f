package transporttest

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/transports/httpx"
)

// streamRequests are the requests that open a stream, written raw: a
// poll through net/http and on the lane, an SSE stream, an upgrade.
var streamRequests = []struct {
	name, path, extra string
	kept              bool // the request comes on a poll connection the lane has taken over
}{
	{name: "poll", path: "/v1/poll"},
	{name: "poll on the lane", path: "/v1/poll", kept: true},
	{name: "sse", path: "/v1/sse"},
	{name: "websocket", path: "/v1/ws", extra: "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"},
}

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
	for _, tc := range streamRequests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.kept && !httpx.PeeksConnections {
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
					keptPoll(t, e, conn, br, tok)
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
// first's cursor, with a message waiting so that it is answered at once
// whatever the hold: once it is, its session is kept and the lane has
// the connection.
func keptPoll(t *testing.T, e *Env, conn net.Conn, br *bufio.Reader, tok string) {
	t.Helper()
	cursor := ""
	for i := range 2 {
		q := "rooms=lobby"
		if i > 0 {
			q += "&cursor=" + url.QueryEscape(cursor)
			hubSend(t, e, "lobby", "news for the kept session")
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

// A leave served after a stream request arrived wins over that request's
// joins, though the request passed its check (httpx.ClientGone) before
// the leave: the request's joins compare leaves with the fence its
// handler took before the check (core.SessionOptions.Fence), not with
// the moment each join begins. The test holds the listing of the
// request's first room, posts a leave of its second, and lets go; the
// third room, listed after the second's turn, says when to look. The
// held listing holds the stripe lock of its user and room; the leave
// takes the one of the same user and "random", which for these users is
// another stripe (else the leave would wait for the listing, and the
// test would fail on its deadline, not pass). Polls are held long, so
// that the joins, bounded by the hold, outlast the held listing.
func TestLeaveAfterArrivalWins(t *testing.T) {
	hold := &holdListing{room: "general", at: make(chan heldListing)}
	e := NewEnv(t, Options{PollHold: time.Minute, Engine: func(s core.Engine) core.Engine {
		hold.Engine = s
		return hold
	}})
	for _, tc := range streamRequests {
		t.Run(tc.name, func(t *testing.T) {
			user := strings.ReplaceAll(tc.name, " ", "-")
			tok := e.Token(t, user, Claims{})
			conn, err := net.Dial("tcp", strings.TrimPrefix(e.URL, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if tc.kept {
				keptPoll(t, e, conn, bufio.NewReader(conn), tok)
			}
			req := "GET " + tc.path + "?rooms=general,random,zzz HTTP/1.1\r\nHost: chat\r\nAuthorization: Bearer " + tok + "\r\n" + tc.extra + "\r\n"
			if _, err := conn.Write([]byte(req)); err != nil {
				t.Fatal(err)
			}
			var held heldListing
			select {
			case held = <-hold.at: // the request is past its check, listing general
			case <-Ctx(t).Done():
				t.Fatal("the request never listed general")
			}
			release := sync.OnceFunc(func() { close(held.release) })
			defer release()
			if held.user != user {
				t.Fatalf("listing held for %s, want %s", held.user, user)
			}
			status, body := httpDo(t, e, http.MethodPost, "/v1/leave", tok, map[string]any{"room": "random"})
			release()
			if status != http.StatusOK {
				t.Fatalf("leave: %d %s", status, body)
			}
			var got []string
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
				if got = roomNames(roomsOf(t, e, tok)); slices.Contains(got, "zzz") {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s: rooms %v, want zzz listed", tc.path, got)
				}
			}
			if !slices.Contains(got, "general") || slices.Contains(got, "random") {
				t.Fatalf("%s: rooms %v after a leave of random served during the request's joins; want general and zzz", tc.path, got)
			}
		})
	}
}

// holdListing holds each listing of room (AddUserRoom) until the test
// closes the release it finds on at.
type holdListing struct {
	core.Engine
	room string
	at   chan heldListing
}

type heldListing struct {
	user    string
	release chan struct{}
}

func (h *holdListing) AddUserRoom(ctx context.Context, user, room string) (bool, error) {
	if room == h.room {
		held := heldListing{user: user, release: make(chan struct{})}
		select {
		case h.at <- held:
		case <-ctx.Done(): // the session ended: a failed test's, at the end
			return false, ctx.Err()
		}
		select {
		case <-held.release:
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
	return h.Engine.AddUserRoom(ctx, user, room)
}

// httpx.Arrived takes the join fence before it asks whether the client
// has gone: a leave served at the very moment of the check (here, from
// inside it) still wins over the joins made with the fence. Taken after
// the check, the fence would let the joins list the room again.
func TestArrivedFencesBeforeTheCheck(t *testing.T) {
	e := NewEnv(t, Options{})
	ctx := Ctx(t)
	alice := auth.Identity{User: "alice", Name: "Alice"}
	check := &leaveOnCheck{Context: ctx, leave: func() {
		if err := e.Hub.Leave(ctx, alice, "random"); err != nil {
			t.Error(err)
		}
	}}
	r := httptest.NewRequest(http.MethodGet, "/v1/ws", nil).WithContext(check)
	fence, here := httpx.Arrived(r, e.Hub)
	if !here || check.calls == 0 {
		t.Fatalf("Arrived: here %v after %d checks, want a client still there, checked", here, check.calls)
	}
	sess, err := e.Hub.Connect(alice, discardTransport{}, core.SessionOptions{Fence: fence})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close(core.DisconnectNormal)
	if err := sess.Join(ctx, "random", nil, false); err != nil {
		t.Fatal(err)
	}
	rooms, err := e.Hub.Rooms(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	for _, room := range rooms {
		if room.Room == "random" {
			t.Fatal("a room left during the check was listed again by the request's join")
		}
	}
}

// leaveOnCheck is a request context whose first Err (the first thing
// httpx.ClientGone asks) serves a leave, and that never ends.
type leaveOnCheck struct {
	context.Context
	leave func()
	calls int
}

func (c *leaveOnCheck) Err() error {
	if c.calls++; c.calls == 1 {
		c.leave()
	}
	return nil
}

// discardTransport is a session transport that drops what it is given.
type discardTransport struct{}

func (discardTransport) Name() string             { return "test" }
func (discardTransport) Write([]core.Frame) error { return nil }
func (discardTransport) Close(core.Disconnect)    {}
