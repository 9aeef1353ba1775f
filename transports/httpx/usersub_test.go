package httpx

import (
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

// FuzzResumeQuery: two polls whose queries ResumeQuery reads as the same
// rooms= and cursor= values subscribe to the same rooms from the same
// positions, whatever else their queries hold: the poll transport takes a
// kept session by those values without parsing them.
func FuzzResumeQuery(f *testing.F) {
	cur := url.QueryEscape(protocol.Cursor{"a": 1, "b": 2, "~": 3}.Encode())
	f.Add("rooms=a,b&cursor="+cur, "rooms=a%2Cb&batch=1&cursor="+cur)
	f.Add("rooms=a,b&cursor="+cur, "cursor="+cur+"&rooms=a,b&rooms=c")
	f.Add("cursor="+cur, "rooms=&cursor="+cur)
	f.Add("rooms=a&cursor="+cur, "rooms=a&cursor="+cur+"&since=a:1")
	f.Add("rooms=a,a,,b&cursor="+cur, "rooms=a,a,,b&cursor="+cur+"&cursor=x")
	f.Add("rooms=a;b&cursor="+cur, "rooms=a&cursor="+cur)
	f.Fuzz(func(t *testing.T, q1, q2 string) {
		id := auth.Identity{User: "bob"}
		r1, r2 := httptest.NewRequest("GET", "/v1/x", nil), httptest.NewRequest("GET", "/v1/x", nil)
		r1.URL.RawQuery, r2.URL.RawQuery = q1, q2
		rooms1, cur1, ok1 := ResumeQuery(r1, 4)
		rooms2, cur2, ok2 := ResumeQuery(r2, 4)
		if !ok1 || !ok2 || rooms1 != rooms2 || cur1 != cur2 {
			return
		}
		s1, c1, f1, err1 := ParseUserSubscription(r1, id, 4)
		s2, c2, f2, err2 := ParseUserSubscription(r2, id, 4)
		if (err1 == nil) != (err2 == nil) || len(f1) != 0 || len(f2) != 0 || !slices.Equal(s1, s2) || len(c1) != len(c2) {
			t.Fatalf("%q and %q: %v %v %v %v and %v %v %v %v", q1, q2, s1, c1, f1, err1, s2, c2, f2, err2)
		}
		for room, pos := range c1 {
			if p, ok := c2[room]; !ok || p != pos {
				t.Fatalf("%q and %q: cursors %v and %v", q1, q2, c1, c2)
			}
		}
	})
}

// ResumeQuery takes only a poll that resumes from a cursor alone.
func TestResumeQuery(t *testing.T) {
	cur := url.QueryEscape(protocol.Cursor{"a": 1, "~": 3}.Encode())
	for _, tt := range []struct {
		query, lastID string
		ok            bool
	}{
		{query: "rooms=a&cursor=" + cur, ok: true},
		{query: "cursor=" + cur, ok: true},
		{query: "rooms=a"},
		{query: "rooms=a&cursor=" + cur + "&since=a:0"},
		{query: "rooms=a&cursor=" + cur, lastID: "x"},
		{query: "rooms=a&cursor=" + cur + "&pad=" + strings.Repeat("x", MaxStreamQuery(3))},
	} {
		r := httptest.NewRequest("GET", "/v1/poll?"+tt.query, nil)
		if tt.lastID != "" {
			r.Header.Set("Last-Event-ID", tt.lastID)
		}
		if _, _, ok := ResumeQuery(r, 2); ok != tt.ok {
			t.Errorf("%.60s (Last-Event-ID %q): %v, want %v", tt.query, tt.lastID, ok, tt.ok)
		}
	}
}
