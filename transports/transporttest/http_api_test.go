package transporttest

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/chatd/chatd/core/protocol"
)

// GET /v1/rooms/{room}/reads returns stored read positions, room names in
// paths may be escaped, and a third user cannot read a dm room's reads.
func TestReadsAndEscapedRooms(t *testing.T) {
	const dm = "dm:alice:bob"
	e := NewEnv(t, Options{Hub: fast})
	alice, bob := e.Token(t, "alice", Claims{}), e.Token(t, "bob", Claims{})
	for _, id := range []string{"a", "b", "c"} {
		if status, body := httpDo(t, e, http.MethodPost, "/v1/send", alice, map[string]any{"room": dm, "id": id, "text": id}); status != http.StatusOK {
			t.Fatalf("send: %d %s", status, body)
		}
	}
	for user, seq := range map[string]uint64{alice: 3, bob: 2} {
		status, body := httpDo(t, e, http.MethodPost, "/v1/read", user, map[string]any{"room": dm, "seq": seq})
		if status != http.StatusOK {
			t.Fatalf("read: %d %s", status, body)
		}
	}
	status, body := httpDo(t, e, http.MethodGet, "/v1/rooms/dm%3Aalice%3Abob/reads", alice, nil)
	var got struct{ Reads map[string]uint64 }
	if status != http.StatusOK || json.Unmarshal(body, &got) != nil || got.Reads["alice"] != 3 || got.Reads["bob"] != 2 {
		t.Fatalf("reads: %d %s", status, body)
	}
	status, body = httpDo(t, e, http.MethodGet, "/v1/rooms/dm%3Aalice%3Abob/history", bob, nil)
	var h struct{ Head uint64 }
	if status != http.StatusOK || json.Unmarshal(body, &h) != nil || h.Head != 3 {
		t.Fatalf("escaped history: %d %s", status, body)
	}
	status, body = httpDo(t, e, http.MethodGet, "/v1/rooms/"+dm+"/reads", e.Token(t, "carol", Claims{}), nil)
	var env protocol.Envelope
	if status != http.StatusForbidden || json.Unmarshal(body, &env) != nil || env.Code != string(protocol.CodeForbidden) {
		t.Fatalf("carol reads reads: %d %s", status, body)
	}
}

// Every JSON answer, success or error, REST or stream refusal, carries
// X-Content-Type-Options: nosniff, so a browser never sniffs a body that
// echoes user input into HTML.
func TestNosniff(t *testing.T) {
	e := NewEnv(t, Options{})
	tok := e.Token(t, "alice", Claims{})
	bearer := http.Header{"Authorization": {"Bearer " + tok}}
	for _, tc := range []struct {
		method, path string
		h            http.Header
		body         any
		status       int
	}{
		{http.MethodGet, "/v1/negotiate", bearer, nil, http.StatusOK},
		{http.MethodPost, "/v1/send", bearer, map[string]string{"room": "general", "id": "n1", "text": "<b>hi</b>"}, http.StatusOK},
		{http.MethodPost, "/v1/ticket", bearer, nil, http.StatusOK},
		{http.MethodGet, "/v1/rooms/general/history", bearer, nil, http.StatusOK},
		{http.MethodPost, "/v1/send", nil, map[string]string{"room": "general", "id": "n2", "text": "x"}, http.StatusUnauthorized},
		{http.MethodPost, "/v1/send", bearer, map[string]string{"room": "no spaces", "id": "n3", "text": "x"}, http.StatusBadRequest},
		{http.MethodGet, "/v1/poll?rooms=general&since=general:0", bearer, nil, http.StatusOK},
		{http.MethodGet, "/v1/poll?rooms=general&since=other:0", bearer, nil, http.StatusBadRequest},
		{http.MethodGet, "/v1/sse?rooms=dm:bob:carol", bearer, nil, http.StatusForbidden},
		{http.MethodGet, "/v1/no-such-thing", bearer, nil, http.StatusNotFound},
	} {
		status, h, body := rawDo(t, tc.method, e.URL+tc.path, tc.h, tc.body)
		if status != tc.status || !strings.HasPrefix(h.Get("Content-Type"), "application/json") {
			t.Fatalf("%s %s: %d %q %s, want %d with JSON", tc.method, tc.path, status, h.Get("Content-Type"), body, tc.status)
		}
		if got := h.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Fatalf("%s %s (%d): X-Content-Type-Options %q", tc.method, tc.path, status, got)
		}
	}
}
