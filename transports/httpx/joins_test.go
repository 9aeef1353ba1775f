package httpx

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/chatd/chatd/core/protocol"
)

func joinsReq(q url.Values) *http.Request {
	return httptest.NewRequest(http.MethodGet, "/v1/ws?"+q.Encode(), nil)
}

// TestParseJoins: rooms in order (repeats and empty entries skipped),
// positions for some of them and for "~"; access is not checked here.
func TestParseJoins(t *testing.T) {
	rooms, since, err := ParseJoins(joinsReq(url.Values{"rooms": {"b,,a,b,secret"}, "since": {"a:3,~:9,b:0,a:4"}}), 4)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(rooms, ",") != "b,a,secret" {
		t.Fatalf("rooms %v, want [b a secret]", rooms)
	}
	if len(since) != 3 || since["a"] != 4 || since["b"] != 0 || since[protocol.UserRoom] != 9 {
		t.Fatalf("positions %v, want a:4 (the last pair), b:0, ~:9", since)
	}
	if rooms, since, err := ParseJoins(joinsReq(url.Values{"since": {"~:2"}}), 4); err != nil || rooms != nil || since[protocol.UserRoom] != 2 {
		t.Fatalf("the user's stream alone: %v %v %v", rooms, since, err)
	}
	if rooms, since, err := ParseJoins(joinsReq(url.Values{"heartbeat": {"app"}}), 4); err != nil || rooms != nil || since != nil {
		t.Fatalf("no joins: %v %v %v", rooms, since, err)
	}
}

// TestParseJoinsRefuses: form and bounds, each with its code.
func TestParseJoinsRefuses(t *testing.T) {
	for _, tc := range []struct {
		q    url.Values
		code protocol.Code
	}{
		{url.Values{"rooms": {"a,b,c,d,e"}}, protocol.CodeTooManyRooms},
		{url.Values{"rooms": {"~"}}, protocol.CodeBadRequest},
		{url.Values{"rooms": {","}}, protocol.CodeBadRequest},
		{url.Values{"rooms": {"a"}, "since": {"b:1"}}, protocol.CodeBadRequest},
		{url.Values{"since": {"a:1"}}, protocol.CodeBadRequest},
		{url.Values{"rooms": {"a"}, "since": {"a:x"}}, protocol.CodeBadRequest},
		{url.Values{"rooms": {"a"}, "since": {"~:1,~:2"}}, protocol.CodeBadRequest},
		{url.Values{"rooms": {"a"}, "since": {"~:1" + strings.Repeat(",a:1", 10)}}, protocol.CodeBadRequest},
		{url.Values{"rooms": {strings.Repeat("a", MaxStreamQuery(5))}}, protocol.CodeBadRequest},
	} {
		rooms, since, err := ParseJoins(joinsReq(tc.q), 4)
		var pe *protocol.Error
		if !errors.As(err, &pe) || pe.Code != tc.code || rooms != nil || since != nil {
			t.Errorf("%v: %v %v %v, want %s", tc.q, rooms, since, err, tc.code)
		}
	}
}

// FuzzParseJoins feeds arbitrary rooms= and since= to ParseJoins. It must
// never panic; a refusal is bad_request or too_many_rooms and returns
// nothing else; an answer has at most maxRooms distinct valid rooms, and
// positions only for them and "~".
func FuzzParseJoins(f *testing.F) {
	const maxRooms = 3
	for _, seed := range [][2]string{
		{"a,b", "a:1,~:2"}, {"", "~:1"}, {"a", "~:1,~:2"}, {"a,a,,b", "b:0"}, {"a,b,c,d", ""},
		{"dm:a:b", "dm:a:b:3"}, {"a", "a:18446744073709551616"}, {"~", ""}, {"é,\u202e", "é:0"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, rooms, since string) {
		q := url.Values{}
		if rooms != "" {
			q.Set("rooms", rooms)
		}
		if since != "" {
			q.Set("since", since)
		}
		got, pos, err := ParseJoins(joinsReq(q), maxRooms)
		if err != nil {
			var pe *protocol.Error
			if !errors.As(err, &pe) || (pe.Code != protocol.CodeBadRequest && pe.Code != protocol.CodeTooManyRooms) {
				t.Fatalf("refusal %v is not bad_request or too_many_rooms", err)
			}
			if got != nil || pos != nil {
				t.Fatalf("refused with %v, yet returned %v %v", err, got, pos)
			}
			return
		}
		if len(got) > maxRooms {
			t.Fatalf("%d rooms", len(got))
		}
		set := map[string]bool{}
		for _, room := range got {
			if set[room] || protocol.ValidRoom(room) != nil {
				t.Fatalf("room %q repeated or invalid", room)
			}
			set[room] = true
		}
		for room := range pos {
			if !set[room] && room != protocol.UserRoom {
				t.Fatalf("a position for %q, which is not joined", room)
			}
		}
	})
}
