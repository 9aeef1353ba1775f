package transporttest

import (
	"encoding/json"
	"net/http"
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
