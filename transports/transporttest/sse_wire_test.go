package transporttest

import (
	"bufio"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chatd/chatd/core"
)

// Guarantee 7 on SSE, at the wire: the stream carries a retry: hint, every
// event has an id (our cursor; an empty id would reset the browser's
// Last-Event-ID), and heartbeats come both as comments (for proxies) and
// as ping events (for client code, which cannot see comments). The
// response is not buffered by proxies (X-Accel-Buffering: no).
func TestSSEWireHeartbeats(t *testing.T) {
	e := NewEnv(t, Options{Hub: core.Config{Heartbeat: 50 * time.Millisecond}, SSERetry: 1500 * time.Millisecond})
	req, _ := http.NewRequestWithContext(Ctx(t), http.MethodGet, e.URL+"/v1/sse?rooms=hb", nil)
	req.Header.Set("Authorization", "Bearer "+e.Token(t, "alice", Claims{}))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	if resp.Header.Get("X-Accel-Buffering") != "no" {
		t.Fatal("no X-Accel-Buffering: no")
	}
	var retry, comments, pings int
	var id string
	sc := bufio.NewScanner(resp.Body)
	for pings < 3 || comments < 3 {
		if !sc.Scan() {
			t.Fatalf("stream ended: %v", sc.Err())
		}
		line := sc.Text()
		switch {
		case line == "retry: 1500":
			retry++
		case strings.HasPrefix(line, ": "):
			comments++
		case strings.HasPrefix(line, "id:"):
			id = strings.TrimSpace(strings.TrimPrefix(line, "id:"))
			if id == "" {
				t.Fatal("an event with an empty id")
			}
		case line == `data: {"type":"ping"}`:
			pings++
		}
	}
	if retry == 0 {
		t.Fatal("no retry: hint")
	}
}
