package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
)

// TestPollLane: with the shipped defaults, a poll client's polls on one
// kept-alive connection go to the lane once a kept session's poll has
// been answered (chat_poll_lane_requests_total counts them), and every
// answer carries on from the cursor before, so each message is seen
// once; a send on the same connection goes back to net/http
// (chat_poll_lane_returned_total) and is answered. With
// --poll-lane=false the same exchange works with no lane and no series.
func TestPollLane(t *testing.T) {
	for _, lane := range []bool{true, false} {
		t.Run(fmt.Sprint("lane=", lane), func(t *testing.T) {
			s := startServer(t, fmt.Sprint("--poll-lane=", lane))
			tok := token(t, e2eSecret, "alice", "Alice")
			c := s.dialFrom(t, "127.0.0.2")
			br := bufio.NewReader(c)
			do := func(req string) answer {
				t.Helper()
				if _, err := c.Write([]byte(req)); err != nil {
					t.Fatal(err)
				}
				a := readAnswer(c, br)
				if a.err != nil || a.status != 200 || a.close {
					t.Fatalf("%q: status %d close %v err %v body %s", strings.SplitN(req, "\r\n", 2)[0], a.status, a.close, a.err, a.body)
				}
				return a
			}
			poll := func(cursor string) (string, []uint64) {
				t.Helper()
				// level=9 is never the level now: the poll answers at once,
				// with the control, instead of holding.
				q := "rooms=lobby&level=9"
				if cursor != "" {
					q += "&cursor=" + url.QueryEscape(cursor)
				}
				a := do("GET /v1/poll?" + q + " HTTP/1.1\r\nHost: chatd\r\nAuthorization: Bearer " + tok + "\r\n\r\n")
				var ans struct {
					Events []struct {
						Type string `json:"type"`
						Seq  uint64 `json:"seq"`
					} `json:"events"`
					Cursor string `json:"cursor"`
				}
				if err := json.Unmarshal(a.body, &ans); err != nil || ans.Cursor == "" {
					t.Fatalf("poll answer %s: %v", a.body, err)
				}
				var seqs []uint64
				for _, e := range ans.Events {
					if e.Type == "message" {
						seqs = append(seqs, e.Seq)
					}
				}
				return ans.Cursor, seqs
			}
			send := func(i int) {
				t.Helper()
				body := fmt.Sprintf(`{"room":"lobby","id":"m%d","text":"hello %d"}`, i, i)
				do(fmt.Sprintf("POST /v1/send HTTP/1.1\r\nHost: chatd\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", tok, len(body), body))
			}
			cur, _ := poll("")
			var got []uint64
			onLane := 0 // polls after the first in each round
			for i := 1; i <= 4; i++ {
				send(i)
				// The ack says the message is stored; it reaches the
				// session's queue a moment later, so a poll that answers
				// at once may miss it: poll again until it is there (a
				// bounded count), and at least twice, the second on the
				// lane if there is one.
				for n := 0; ; n++ {
					if n == 1000 {
						t.Fatalf("message %d not seen in %d polls (seen %v)", i, n, got)
					}
					var seqs []uint64
					cur, seqs = poll(cur)
					got = append(got, seqs...)
					if n > 0 {
						onLane++
					}
					if n > 0 && len(got) > 0 && got[len(got)-1] == uint64(i) {
						break
					}
				}
			}
			if fmt.Sprint(got) != "[1 2 3 4]" {
				t.Fatalf("messages seen over the polls: %v, want [1 2 3 4]", got)
			}
			body := string(s.get(t, "127.0.0.3", "/metrics").body)
			has := strings.Contains(body, "chat_poll_lane_requests_total")
			if has != lane {
				t.Fatalf("chat_poll_lane_requests_total in /metrics: %v, want %v", has, lane)
			}
			if lane {
				// The first poll has no cursor and keeps no session. Then,
				// each round: the send (net/http, or given back by the
				// lane from the second round on), a poll net/http answers
				// and hands over, the rest of the round's polls on the
				// lane.
				if v := s.metric(t, "127.0.0.3", "chat_poll_lane_requests_total"); v != float64(onLane) {
					t.Errorf("chat_poll_lane_requests_total %v, want %d", v, onLane)
				}
				if v := s.metric(t, "127.0.0.3", "chat_poll_lane_returned_total"); v != 3 {
					t.Errorf("chat_poll_lane_returned_total %v, want 3", v)
				}
			}
		})
	}
}

// TestLaneKeepsIdleConnections: with the shipped defaults, a page's
// kept-alive connection waits for its next request on the lane after
// each whole answer (chat_http_lane_kept_total), through every
// middleware the answer passed (the write timeout's among them); a
// request the lane does not serve goes back to net/http and is answered.
func TestLaneKeepsIdleConnections(t *testing.T) {
	s := startServer(t)
	c := s.dialFrom(t, "127.0.0.2")
	br := bufio.NewReader(c)
	for _, path := range []string{"/", "/chat.css", "/"} {
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: chatd\r\n\r\n", path)
		if a := readAnswer(c, br); a.err != nil || a.status != 200 || a.close {
			t.Fatalf("GET %s: status %d close %v err %v", path, a.status, a.close, a.err)
		}
	}
	if v := s.metric(t, "127.0.0.3", "chat_http_lane_kept_total"); v != 3 {
		t.Errorf("chat_http_lane_kept_total %v, want 3: one for each answer", v)
	}
	if v := s.metric(t, "127.0.0.3", "chat_poll_lane_returned_total"); v != 2 {
		t.Errorf("chat_poll_lane_returned_total %v, want 2: the requests after the first", v)
	}
}
