package transporttest

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/core/protocol"
)

// TestWSJoinsInQuery: a WebSocket dialed with rooms= and since= is joined
// to those rooms as if its first frames were their join envelopes: the
// greeting and both joined replies come in the first message, each room
// replays from its position exactly once, and live messages follow.
func TestWSJoinsInQuery(t *testing.T) {
	e := NewEnv(t, Options{Degrade: true}) // with the greeting
	ctx := Ctx(t)
	sender := auth.Identity{User: "sender", Name: "sender"}
	for i := 1; i <= 3; i++ {
		for _, room := range []string{"a", "b"} {
			if _, err := e.Hub.Send(ctx, sender, room, fmt.Sprint(room, i), fmt.Sprint(room, " ", i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	h := http.Header{"Authorization": {"Bearer " + e.Token(t, "alice", Claims{})}}
	conn, _, err := websocket.DefaultDialer.Dial(WSURL(e, "rooms=a,b&since=a:1,b:3&"+protocol.BatchParam+"=1"), h)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	_, first, err := conn.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	if first[0] != '[' {
		t.Fatalf("first message %s is not a batch", first)
	}
	batch := decodeFrame(t, first)
	var types []string
	for _, env := range batch {
		types = append(types, env.Type+":"+env.Room)
	}
	if len(batch) < 3 || batch[0].Type != protocol.TypeControl || !slices.Contains(types, "joined:a") || !slices.Contains(types, "joined:b") {
		t.Fatalf("first message holds %v, want the greeting, then joined for a and b", types)
	}
	// What follows the first message, with it: a's seq 2 and 3, none of
	// b's, then a live message in each room.
	seen := map[string][]uint64{}
	record := func(list []protocol.Envelope) {
		for _, env := range list {
			if env.Type == protocol.TypeMessage {
				seen[env.Room] = append(seen[env.Room], env.Seq)
			}
		}
	}
	record(batch)
	for _, room := range []string{"a", "b"} {
		if _, err := e.Hub.Send(ctx, sender, room, room+"-live", "live"); err != nil {
			t.Fatal(err)
		}
	}
	for len(seen["a"]) < 3 || len(seen["b"]) < 1 {
		_, data, err := conn.ReadMessage()
		if err != nil {
			t.Fatalf("read: %v (seen %v)", err, seen)
		}
		record(decodeFrame(t, data))
	}
	if fmt.Sprint(seen["a"]) != "[2 3 4]" || fmt.Sprint(seen["b"]) != "[4]" {
		t.Fatalf("messages seen %v, want a [2 3 4] and b [4]", seen)
	}
}

// TestWSJoinsInQueryRefused: a room of rooms= the token does not allow
// gets an error reply that names it (there is no ref to echo), and the
// other rooms are joined all the same; a malformed query is refused
// before the upgrade, with the error's status.
func TestWSJoinsInQueryRefused(t *testing.T) {
	e := NewEnv(t, Options{})
	ctx := Ctx(t)
	tok := e.Token(t, "alice", Claims{Rooms: []string{"a"}})
	c, err := DialWSURL(WSURL(e, "rooms=secret,a&since=secret:0,a:0"), http.Header{"Authorization": {"Bearer " + tok}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	refused := nextOf(t, c, protocol.TypeError)
	if refused.Room != "secret" || refused.Code != string(protocol.CodeForbidden) || refused.Ref != "" {
		t.Fatalf("error reply %+v, want forbidden for room secret without a ref", refused)
	}
	if j := nextOf(t, c, protocol.TypeJoined); j.Room != "a" {
		t.Fatalf("joined %+v, want room a", j)
	}
	if _, err := e.Hub.Send(ctx, auth.Identity{User: "bob", Name: "bob"}, "a", "m1", "hello"); err != nil {
		t.Fatal(err)
	}
	if m := nextOf(t, c, protocol.TypeMessage); m.Room != "a" || m.Seq != 1 {
		t.Fatalf("message %+v, want a's seq 1", m)
	}

	for _, tc := range []struct {
		query  string
		status int
	}{
		{"rooms=a&since=a:x", http.StatusBadRequest},
		{"rooms=a&since=b:1", http.StatusBadRequest},
		{"since=a:1", http.StatusBadRequest},
		{"rooms=" + manyRooms(e.Hub.Config().MaxRoomsPerSession+1), http.StatusConflict},
		{"rooms=" + strings.Repeat("x", protocol.MaxRoomLen+1), http.StatusBadRequest},
	} {
		_, err := DialWSURL(WSURL(e, tc.query), http.Header{"Authorization": {"Bearer " + tok}}, nil)
		var de *DialError
		if !errors.As(err, &de) || de.Status != tc.status {
			t.Errorf("query %.40s: %v, want status %d", tc.query, err, tc.status)
		}
	}
}

// TestWSJoinsInQueryUserStream: since=~:N resumes the user's own stream
// from N, with a joined envelope for "~", as a join of "~" would.
func TestWSJoinsInQueryUserStream(t *testing.T) {
	e := NewEnv(t, Options{})
	tok := e.Token(t, "alice", Claims{})
	first := DialWS(t, e, tok, []Join{{Room: "a"}, {Room: "b"}}) // lists a, then b: two user events
	first.Close()
	c, err := DialWSURL(WSURL(e, "since=~:1"), http.Header{"Authorization": {"Bearer " + tok}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := Ctx(t)
	j, err := c.NextUser(ctx)
	if err != nil || j.Type != protocol.TypeJoined || j.Room != protocol.UserRoom {
		t.Fatalf("first of the user's stream %+v, %v; want joined ~", j, err)
	}
	ev, err := c.NextUser(ctx)
	if err != nil || ev.Type != protocol.TypeRoom || ev.Seq != 2 {
		t.Fatalf("next of the user's stream %+v, %v; want its seq 2", ev, err)
	}
}

func manyRooms(n int) string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprint("r", i)
	}
	return strings.Join(names, ",")
}
