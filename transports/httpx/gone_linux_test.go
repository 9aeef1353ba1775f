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
// next request already there, and true once the client has closed it.
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
