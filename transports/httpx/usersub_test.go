package httpx

import (
	"fmt"
	"maps"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/core/protocol"
)

func TestSubscriptionUserStream(t *testing.T) {
	id := auth.Identity{User: "bob"}
	cur := protocol.Cursor{"general": 4, protocol.UserRoom: 7}.Encode()
	for _, tt := range []struct {
		query, lastID string
		rooms         []string
		user          uint64
		hasUser       bool
		fresh         bool
	}{
		{query: "", rooms: []string{"~"}},
		{query: "rooms=general", rooms: []string{"general", "~"}},
		{query: "cursor=" + url.QueryEscape(cur), rooms: []string{"~"}, user: 7, hasUser: true},
		{query: "rooms=general&cursor=" + url.QueryEscape(cur), rooms: []string{"general", "~"}, user: 7, hasUser: true},
		{query: "rooms=general&since=" + url.QueryEscape("general:2,~:3"), rooms: []string{"general", "~"}, user: 3, hasUser: true, fresh: true},
		{query: "since=" + url.QueryEscape("~:3") + "&cursor=" + url.QueryEscape(cur), rooms: []string{"~"}, user: 3, hasUser: true, fresh: true},
		{query: "since=" + url.QueryEscape("~:3"), lastID: cur, rooms: []string{"~"}, user: 7, hasUser: true},
	} {
		r := httptest.NewRequest("GET", "/v1/x?"+tt.query, nil)
		if tt.lastID != "" {
			r.Header.Set("Last-Event-ID", tt.lastID)
		}
		rooms, c, fresh, err := ParseUserSubscription(r, id, 2)
		if err != nil {
			t.Fatalf("%s: %v", tt.query, err)
		}
		p, ok := c[protocol.UserRoom]
		if !slices.Equal(rooms, tt.rooms) || ok != tt.hasUser || p != tt.user || fresh[protocol.UserRoom] != tt.fresh {
			t.Errorf("%s: rooms %v, cursor %v, fresh %v", tt.query, rooms, c, fresh)
		}
	}
	// A cursor of two rooms and ~ passes a limit of two rooms.
	full := protocol.Cursor{"a": 1, "b": 1, protocol.UserRoom: 1}.Encode()
	if _, _, _, err := ParseUserSubscription(httptest.NewRequest("GET", "/v1/x?rooms=a,b&cursor="+url.QueryEscape(full), nil), id, 2); err != nil {
		t.Errorf("two rooms and ~ at a limit of two: %v", err)
	}
	for query, code := range map[string]protocol.Code{
		"rooms=a,b,c":                         protocol.CodeTooManyRooms,
		"since=" + url.QueryEscape("a:1"):     protocol.CodeBadRequest,
		"since=" + url.QueryEscape("~:1,~:2"): protocol.CodeBadRequest,
		"since=" + url.QueryEscape("~:x"):     protocol.CodeBadRequest,
		"rooms=~":                             protocol.CodeBadRequest,
		"cursor=nonsense":                     protocol.CodeBadRequest,
	} {
		_, _, _, err := ParseUserSubscription(httptest.NewRequest("GET", "/v1/x?"+query, nil), id, 2)
		if c, _ := protocol.CodeOf(err); err == nil || c != code {
			t.Errorf("%s: %v, want %s", query, err, code)
		}
	}
}

func FuzzUserSubscription(f *testing.F) {
	f.Add("rooms=a&since=~:3", "")
	f.Add("since=~:1,a:2", protocol.Cursor{"~": 1}.Encode())
	f.Add("rooms=a,b&cursor="+protocol.Cursor{"a": 1, "~": 2}.Encode(), "")
	f.Fuzz(func(t *testing.T, query, lastID string) {
		r := httptest.NewRequest("GET", "/v1/x", nil)
		r.URL.RawQuery = query
		if lastID != "" {
			r.Header.Set("Last-Event-ID", lastID)
		}
		rooms, cur, _, err := ParseUserSubscription(r, auth.Identity{User: "bob"}, 4)
		if err != nil {
			if c, _ := protocol.CodeOf(err); c != protocol.CodeBadRequest && c != protocol.CodeTooManyRooms {
				t.Fatalf("code %s: %v", c, err)
			}
			return
		}
		if len(rooms) == 0 || rooms[len(rooms)-1] != protocol.UserRoom || len(rooms) > 5 {
			t.Fatalf("rooms %v", rooms)
		}
		for room := range cur {
			if !slices.Contains(rooms, room) {
				t.Fatalf("cursor %v names %s, not subscribed", cur, room)
			}
		}
	})
}

// TestSubscriptionRoomsOwnTheirNames: the room names a subscription
// returns are not slices of the request's URL. They outlive the request
// (a session's rooms, a kept or parked poll's position), and a slice
// would keep the whole request line alive with them.
func TestSubscriptionRoomsOwnTheirNames(t *testing.T) {
	r := httptest.NewRequest("GET", "/v1/poll?rooms=general,random", nil)
	rooms, _, _, err := ParseUserSubscription(r, auth.Identity{User: "bob"}, 10)
	if err != nil {
		t.Fatal(err)
	}
	query := r.URL.RawQuery
	lo := uintptr(unsafe.Pointer(unsafe.StringData(query)))
	for _, room := range rooms {
		if room == protocol.UserRoom {
			continue
		}
		if p := uintptr(unsafe.Pointer(unsafe.StringData(room))); lo <= p && p < lo+uintptr(len(query)) {
			t.Errorf("room %q is a slice of the query %q", room, query)
		}
	}
}

// ResumeQuery gives a poll's rooms= and cursor= as ParseUserSubscription
// reads them, and says the request resumes from its cursor alone only
// when nothing else (since=, Last-Event-ID, a query too long) would make
// the parse differ or fail. What a poll transport keeps for that case
// holds: the cursor an answer gives (Advance, Encode) parses back, with
// the same rooms=, to the same rooms and cursor.
func TestResumeQuery(t *testing.T) {
	id := auth.Identity{User: "bob"}
	cur := protocol.Cursor{"general": 4, "random": 1, protocol.UserRoom: 7}.Encode()
	esc := url.QueryEscape(cur)
	long := "rooms=" + strings.Repeat("x", MaxStreamQuery(3)) + "&cursor=" + esc
	for _, tt := range []struct {
		query, lastID string
		rooms, cursor string
		ok            bool
	}{
		{query: "rooms=general&cursor=" + esc, rooms: "general", cursor: cur, ok: true},
		{query: "cursor=" + esc, cursor: cur, ok: true},
		{query: "cursor=" + esc + "&rooms=general&cursor=other&rooms=x", rooms: "general", cursor: cur, ok: true},
		{query: "rooms=general%2Crandom&cursor=" + esc + "&batch=1", rooms: "general,random", cursor: cur, ok: true},
		{query: "rooms=general", rooms: "general"},
		{query: "rooms=general&cursor=" + esc + "&since=general:1", rooms: "general", cursor: cur},
		{query: "rooms=general&cursor=" + esc, lastID: cur, rooms: "general", cursor: cur},
		{query: long},
		{query: "rooms=general&cursor=%" + fmt.Sprintf("%02X", cur[0]) + esc[1:], rooms: "general", cursor: cur, ok: true},
	} {
		r := httptest.NewRequest("GET", "/v1/poll?"+tt.query, nil)
		if tt.lastID != "" {
			r.Header.Set("Last-Event-ID", tt.lastID)
		}
		rooms, cursor, ok := ResumeQuery(r, 2)
		if rooms != tt.rooms || cursor != tt.cursor || ok != tt.ok {
			t.Errorf("%.80s: ResumeQuery = %q, %q, %v; want %q, %q, %v", tt.query, rooms, cursor, ok, tt.rooms, tt.cursor, tt.ok)
		}
		if !ok {
			continue
		}
		gotRooms, gotCur, fresh, err := ParseUserSubscription(r, id, 2)
		if err != nil || len(fresh) != 0 {
			t.Fatalf("%s: %v, fresh %v", tt.query, err, fresh)
		}
		next := Advance(gotCur, gotRooms, nil)
		again := httptest.NewRequest("GET", "/v1/poll?rooms="+url.QueryEscape(rooms)+"&cursor="+url.QueryEscape(next.Encode()), nil)
		againRooms, againCur, _, err := ParseUserSubscription(again, id, 2)
		if err != nil || !slices.Equal(againRooms, gotRooms) || !maps.Equal(againCur, next) {
			t.Errorf("%s: the answer's cursor parses to %v %v (%v), want %v %v", tt.query, againRooms, againCur, err, gotRooms, next)
		}
	}
}
