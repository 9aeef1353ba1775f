package transporttest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// One kept-alive HTTP/1.1 connection, as a page's: a negotiate, the
// user's profile and rooms, a send with a body, the rooms and the
// profile again. Each answer is the one net/http would give; the
// connection is handed to the lane after a whole answer
// (chat_http_lane_kept_total), which serves the REST reads there
// (chat_poll_lane_requests_total) and gives the send back to net/http,
// whose next whole answer hands it over again.
func TestRESTOnAKeptConnection(t *testing.T) {
	e := NewEnv(t, Options{Hub: fast})
	tok := e.Token(t, "keeper", Claims{})
	c, err := net.Dial("tcp", strings.TrimPrefix(e.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	br := bufio.NewReader(c)
	do := func(method, path, body string) map[string]any {
		t.Helper()
		req := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n", method, path, tok)
		if body != "" {
			req += fmt.Sprintf("Content-Type: application/json\r\nContent-Length: %d\r\n", len(body))
		}
		if _, err := io.WriteString(c, req+"\r\n"+body); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second)) // a bound on a hang, not a timing
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		var out map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("%s %s: %d, %v", method, path, resp.StatusCode, err)
		}
		return out
	}
	if o := do(http.MethodGet, "/v1/negotiate", ""); o["transports"] == nil {
		t.Fatalf("negotiate: %v, want an offer", o)
	}
	lane := series(scrape(t, e), "chat_poll_lane_requests_total")
	if me := do(http.MethodGet, "/v1/me", ""); me["user"] != "keeper" {
		t.Fatalf("me: %v", me)
	}
	if rooms := do(http.MethodGet, "/v1/rooms", ""); rooms["rooms"] == nil {
		t.Fatalf("rooms: %v, want the list", rooms)
	}
	if ack := do(http.MethodPost, "/v1/send", `{"room":"kept","id":"k1","text":"on a kept connection"}`); ack["type"] != "ack" {
		t.Fatalf("send: %v, want an ack", ack)
	}
	if rooms := do(http.MethodGet, "/v1/rooms", ""); rooms["rooms"] == nil {
		t.Fatalf("rooms after the send: %v, want the list", rooms)
	}
	if me := do(http.MethodGet, "/v1/me", ""); me["user"] != "keeper" {
		t.Fatalf("me again: %v", me)
	}
	mfs := scrape(t, e)
	if n := series(mfs, "chat_http_lane_kept_total"); n < 2 {
		t.Fatalf("chat_http_lane_kept_total %v, want at least 2 (after the negotiate, after the send)", n)
	}
	if n := series(mfs, "chat_poll_lane_requests_total") - lane; n < 3 {
		t.Fatalf("the lane served %v of the reads, want three: the two after the negotiate, the last after the rooms", n)
	}
}
