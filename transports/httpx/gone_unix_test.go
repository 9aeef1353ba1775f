//go:build linux || darwin || dragonfly || freebsd || netbsd || openbsd

package httpx

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestClientGone: ClientGone is false while the client that sent a
// request keeps its connection open, with nothing more sent or with the
// next request already there, and true once the client has closed it
// (here net/http's background read may see it first; TestPeerClosed
// tests the peek alone).
func TestClientGone(t *testing.T) {
	type seen struct {
		r    *http.Request
		done chan struct{}
	}
	got := make(chan seen)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := seen{r: r, done: make(chan struct{})}
		got <- s
		<-s.done
	}))
	srv.Config.ConnContext = KeepConn
	srv.Start()
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	request := "GET /x HTTP/1.1\r\nHost: x\r\n\r\n"

	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(request)); err != nil {
		t.Fatal(err)
	}
	s := <-got
	if ClientGone(s.r) {
		t.Fatal("ClientGone with the client connected")
	}
	if _, err := conn.Write([]byte(request)); err != nil { // the next request, pipelined
		t.Fatal(err)
	}
	if ClientGone(s.r) {
		t.Fatal("ClientGone with the client's next request waiting")
	}
	close(s.done)
	s = <-got // the pipelined request
	conn.Close()
	gone := false
	for deadline := time.Now().Add(5 * time.Second); !gone && time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		gone = ClientGone(s.r)
	}
	close(s.done)
	if !gone {
		t.Fatal("ClientGone still false 5 s after the client closed")
	}
}

// TestPeerClosed: the peek finds the peer's end of stream and a reset,
// and nothing else: not a peer that is there, with or without bytes
// waiting, nor a close behind bytes not yet read.
func TestPeerClosed(t *testing.T) {
	pair := func() (client, server *net.TCPConn) { return tcpPair(t) }
	eventually := func(what string, s *net.TCPConn) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !peerClosed(s); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: peerClosed still false after 5 s", what)
			}
		}
	}

	c, s := pair()
	if peerClosed(s) {
		t.Fatal("a peer that is there, nothing sent: closed")
	}
	if _, err := c.Write([]byte("GET")); err != nil {
		t.Fatal(err)
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	// The bytes come before the close: not closed until they are read.
	buf := make([]byte, 3)
	deadline := time.Now().Add(5 * time.Second)
	for n := 0; n < 3; {
		if peerClosed(s) {
			t.Fatal("bytes waiting before the close: closed")
		}
		if err := s.SetReadDeadline(deadline); err != nil {
			t.Fatal(err)
		}
		k, err := s.Read(buf[n:])
		if err != nil {
			t.Fatal(err)
		}
		n += k
	}
	eventually("the end of stream after the bytes", s)

	c, s = pair()
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	eventually("an end of stream", s)

	c, s = pair()
	if err := c.SetLinger(0); err != nil {
		t.Fatal(err)
	}
	c.Close() // a reset
	eventually("a reset", s)
}

// TestTCPConnUnderGiveBack: a connection the lane gave back to net/http
// (with bytes it had read and not served) is still the TCP connection
// underneath for ClientGone and Cork, and ClientGone sees its client
// close.
func TestTCPConnUnderGiveBack(t *testing.T) {
	c, s := tcpPair(t)
	given := &replayConn{Conn: s, pending: []byte("GET /x HTTP/1.1\r\nHost: x\r\n\r\n")}
	if tcpConn(given) != s {
		t.Fatalf("tcpConn of a given-back connection: %v, want the TCP connection", tcpConn(given))
	}
	r := httptest.NewRequest(http.MethodGet, "/x", nil)
	r = r.WithContext(KeepConn(r.Context(), given))
	if ClientGone(r) {
		t.Fatal("ClientGone with the client connected")
	}
	c.Close()
	gone := false
	for deadline := time.Now().Add(5 * time.Second); !gone && time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		gone = ClientGone(r)
	}
	if !gone {
		t.Fatal("ClientGone still false 5 s after the client of a given-back connection closed")
	}
}
