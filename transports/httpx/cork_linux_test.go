package httpx

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
)

// corkOf reads TCP_CORK off c's socket.
func corkOf(t *testing.T, c net.Conn) int {
	t.Helper()
	rc, err := tcpConn(c).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	v := -1
	var gerr error
	if err := rc.Control(func(fd uintptr) {
		v, gerr = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_CORK)
	}); err != nil || gerr != nil {
		t.Fatal(err, gerr)
	}
	return v
}

// TestCork: a request on a kept connection (KeepConn), under the
// connection limits' wrapper, is corked by Cork and uncorked by the
// function it returns, which may run twice; without KeepConn Cork does
// nothing.
func TestCork(t *testing.T) {
	got := make(chan []int, 1)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := r.Context().Value(connKey{}).(net.Conn)
		uncork := Cork(r)
		var states []int
		if c != nil {
			states = append(states, corkOf(t, c))
			uncork()
			uncork()
			states = append(states, corkOf(t, c))
		}
		got <- states
		io.WriteString(w, "ok")
	}))
	srv.Listener = NewListener(srv.Listener, ConnLimits{Total: 10, PerIP: 10})
	srv.Config.ConnContext = KeepConn
	srv.Start()
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if states := <-got; len(states) != 2 || states[0] != 1 || states[1] != 0 {
		t.Fatalf("TCP_CORK corked then uncorked: %v, want [1 0]", states)
	}

	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		Cork(r)() // no kept connection: nothing to cork, and uncork is harmless
		io.WriteString(w, "ok")
	}))
	defer plain.Close()
	if resp, err := http.Get(plain.URL); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close()
	}
}
