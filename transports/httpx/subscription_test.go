package httpx

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/core/protocol"
)

// subReq builds a subscription request; lastID is the Last-Event-ID
// header, if not empty.
func subReq(q url.Values, lastID string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/v1/poll?"+q.Encode(), nil)
	if lastID != "" {
		r.Header.Set("Last-Event-ID", lastID)
	}
	return r
}

// wantCode fails unless err is a wire error with code.
func wantCode(t *testing.T, what string, err error, code protocol.Code) {
	t.Helper()
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Code != code {
		t.Fatalf("%s: got %v, want %s", what, err, code)
	}
}

var alice = auth.Identity{User: "alice", Name: "alice"}

func TestParseSubscriptionPositions(t *testing.T) {
	cur := protocol.Cursor{"a": 4, "b": 7, "gone": 9}.Encode()
	rooms, got, fresh, err := ParseSubscription(subReq(url.Values{
		"rooms": {"a,b,,a,dm:alice:bob"}, "cursor": {cur}, "since": {"b:2,dm:alice:bob:5"}}, ""), alice, 4)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(rooms, " ") != "a b dm:alice:bob" {
		t.Fatalf("rooms %q", rooms)
	}
	// since= wins over the cursor; the cursor's unsubscribed room is dropped.
	want := protocol.Cursor{"a": 4, "b": 2, "dm:alice:bob": 5}
	if fmt.Sprint(got) != fmt.Sprint(want) || len(fresh) != 2 || !fresh["b"] || !fresh["dm:alice:bob"] {
		t.Fatalf("cursor %v fresh %v, want %v with fresh b and the dm", got, fresh, want)
	}
	// Last-Event-ID alone decides, and is filtered the same way.
	_, got, fresh, err = ParseSubscription(subReq(url.Values{"rooms": {"a"}, "since": {"a:1"}}, cur), alice, 4)
	if err != nil || fmt.Sprint(got) != fmt.Sprint(protocol.Cursor{"a": 4}) || fresh != nil {
		t.Fatalf("Last-Event-ID: %v %v %v", got, fresh, err)
	}
	// A cursor of none of the rooms leaves an empty one: positions known
	// for nothing, not a live start.
	_, got, _, err = ParseSubscription(subReq(url.Values{"rooms": {"z"}, "cursor": {cur}}, ""), alice, 4)
	if err != nil || got == nil || len(got) != 0 {
		t.Fatalf("unrelated cursor: %v %v", got, err)
	}
}

func TestParseSubscriptionRefuses(t *testing.T) {
	const maxRooms = 3
	many := protocol.Cursor{"a": 1, "b": 2, "c": 3, "d": 4}.Encode()
	long := strings.Repeat("x", protocol.MaxRoomLen)
	for _, tc := range []struct {
		what   string
		q      url.Values
		lastID string
		code   protocol.Code
	}{
		{"no rooms", url.Values{}, "", protocol.CodeBadRequest},
		{"4 rooms", url.Values{"rooms": {"a,b,c,d"}}, "", protocol.CodeTooManyRooms},
		{"300 rooms", url.Values{"rooms": {roomList(300)}}, "", protocol.CodeTooManyRooms},
		{"one name too long", url.Values{"rooms": {long + "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" + long + long}}, "", protocol.CodeBadRequest},
		{"forbidden room", url.Values{"rooms": {"a,dm:bob:carol"}}, "", protocol.CodeForbidden},
		{"since of an unsubscribed room", url.Values{"rooms": {"a,b"}, "since": {"a:1,c:2"}}, "", protocol.CodeBadRequest},
		{"4 since pairs", url.Values{"rooms": {"a,b,c"}, "since": {"a:1,b:1,c:1,a:2"}}, "", protocol.CodeBadRequest},
		{"since trailing comma", url.Values{"rooms": {"a"}, "since": {"a:1,"}}, "", protocol.CodeBadRequest},
		{"since without seq", url.Values{"rooms": {"a"}, "since": {"a"}}, "", protocol.CodeBadRequest},
		{"since too long", url.Values{"rooms": {"a"}, "since": {strings.Repeat("a:1", 1000)}}, "", protocol.CodeBadRequest},
		{"cursor of 4 rooms", url.Values{"rooms": {"a"}, "cursor": {many}}, "", protocol.CodeBadRequest},
		{"Last-Event-ID of 4 rooms", url.Values{"rooms": {"a"}}, many, protocol.CodeBadRequest},
		{"cursor too long", url.Values{"rooms": {"a"}, "cursor": {strings.Repeat("A", maxCursorLen(maxRooms)+1)}}, "", protocol.CodeBadRequest},
		{"Last-Event-ID too long", url.Values{"rooms": {"a"}}, strings.Repeat("A", maxCursorLen(maxRooms)+1), protocol.CodeBadRequest},
		{"query too long", url.Values{"rooms": {"a"}, "x": {strings.Repeat("x", MaxStreamQuery(maxRooms))}}, "", protocol.CodeBadRequest},
	} {
		rooms, cur, fresh, err := ParseSubscription(subReq(tc.q, tc.lastID), alice, maxRooms)
		wantCode(t, tc.what, err, tc.code)
		if rooms != nil || cur != nil || fresh != nil {
			t.Fatalf("%s: refused, yet returned %v %v %v", tc.what, rooms, cur, fresh)
		}
	}
}

// roomList returns n distinct room names, comma-separated.
func roomList(n int) string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprint("r", i)
	}
	return strings.Join(names, ",")
}

// A cursor of maxRooms rooms with the longest names and seqs fits every
// bound, so the bounds refuse no cursor the server itself issues.
func TestBoundsFitTheLargestSubscription(t *testing.T) {
	const maxRooms = 128
	cur := protocol.Cursor{}
	var rooms, pairs []string
	for i := range maxRooms {
		name := fmt.Sprintf("%03d", i) + strings.Repeat("é", (protocol.MaxRoomLen-3)/2)
		cur[name] = ^uint64(0)
		rooms = append(rooms, name)
		pairs = append(pairs, fmt.Sprintf("%s:%d", name, ^uint64(0)))
	}
	enc := cur.Encode()
	if len(enc) > maxCursorLen(maxRooms) || len(enc) > protocol.MaxCursorLen {
		t.Fatalf("a %d-room cursor is %d bytes; the bound is %d", maxRooms, len(enc), maxCursorLen(maxRooms))
	}
	q := url.Values{"rooms": {strings.Join(rooms, ",")}, "since": {strings.Join(pairs, ",")}, "cursor": {enc}}
	r := subReq(q, "")
	r.URL.RawQuery += "&ticket=" + strings.Repeat("t", auth.MaxTicketLen)
	got, c, fresh, err := ParseSubscription(r, alice, maxRooms)
	if err != nil || len(got) != maxRooms || len(c) != maxRooms || len(fresh) != maxRooms {
		t.Fatalf("the largest subscription: %d rooms, %d positions, %d fresh, %v", len(got), len(c), len(fresh), err)
	}
	t.Logf("query %d bytes; MaxStreamQuery(%d) = %d", len(r.URL.RawQuery), maxRooms, MaxStreamQuery(maxRooms))
}

// An oversized request is refused before any work: what it costs does not
// grow with what it carries.
func TestOversizedSubscriptionCostsNothing(t *testing.T) {
	pairs := make([]string, 60000)
	for i := range pairs {
		pairs[i] = fmt.Sprintf("r%d:%d", i, i)
	}
	huge := subReq(url.Values{"rooms": {"r1"}, "since": {strings.Join(pairs, ",")}}, "")
	// Under the query bound, over since='s: the query is parsed, since= is not split.
	over := subReq(url.Values{"rooms": {"r1"}, "since": {strings.Join(pairs[:5000], ",")}}, "")
	if len(over.URL.RawQuery) > MaxStreamQuery(128) {
		t.Fatalf("the test's second request should pass the query bound")
	}
	for name, r := range map[string]*http.Request{"60000 pairs": huge, "5000 pairs": over} {
		var err error
		allocs := testing.AllocsPerRun(20, func() { _, _, _, err = ParseSubscription(r, alice, 128) })
		wantCode(t, name, err, protocol.CodeBadRequest)
		if allocs > 20 {
			t.Errorf("%s: %v allocations to refuse; the work is not bounded", name, allocs)
		}
	}
}
