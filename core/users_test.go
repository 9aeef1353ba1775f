package core_test

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/core/protocol"
)

// decoded returns r's frames of type typ, decoded.
func decoded(t *testing.T, r *recorder, typ string) []protocol.Envelope {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []protocol.Envelope
	for _, f := range r.frames {
		if f.Type != typ {
			continue
		}
		var e protocol.Envelope
		if err := json.Unmarshal(f.Data, &e); err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

// waitN waits until r holds n frames of type typ and returns them.
func waitN(t *testing.T, r *recorder, typ string, n int) []protocol.Envelope {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		if got := decoded(t, r, typ); len(got) >= n {
			return got
		}
		select {
		case <-r.more:
		case <-deadline:
			t.Fatalf("%d %s frames, want %d: %+v", len(decoded(t, r, typ)), typ, n, decoded(t, r, typ))
		}
	}
}

// follow connects user and follows their own stream, live.
func follow(t *testing.T, hub *core.Hub, id auth.Identity) (*core.Session, *recorder) {
	t.Helper()
	rec := newRecorder()
	s, err := hub.Connect(id, rec, core.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Join(context.Background(), protocol.UserRoom, nil, false); err != nil {
		t.Fatal(err)
	}
	return s, rec
}

// The first message of a DM lists the room for both users and tells
// each (reason dm, with the other user); a retry of that send tells
// nobody twice; the room list shows the DM with its unread count and
// last message.
func TestDMTellsBothUsers(t *testing.T) {
	ctx := context.Background()
	hub := newHub(t, core.Config{})
	alice := auth.Identity{User: "alice", Name: "Alice"}
	bob := auth.Identity{User: "bob", Name: "Bob"}
	_, bobRec := follow(t, hub, bob)
	_, aliceRec := follow(t, hub, alice)
	if f := bobRec.waitType(t, protocol.TypeJoined); f.Room != protocol.UserRoom {
		t.Fatalf("joined frame for the stream names %q, want ~", f.Room)
	}
	if _, err := hub.Me(ctx, bob); err != nil { // bob's token name is seen: alice sees it
		t.Fatal(err)
	}
	room := auth.DMRoom("alice", "bob")
	for range 2 { // the retry is a dup
		if _, err := hub.Send(ctx, alice, room, "m1", "hi bob"); err != nil {
			t.Fatal(err)
		}
	}
	got := waitN(t, bobRec, protocol.TypeRoom, 1)[0]
	if got.Room != room || got.Reason != protocol.ReasonDM || got.Seq != 1 ||
		got.DM == nil || *got.DM != (protocol.Peer{User: "alice", Name: "Alice"}) {
		t.Fatalf("bob got %+v (dm %+v)", got, got.DM)
	}
	mine := waitN(t, aliceRec, protocol.TypeRoom, 1)[0]
	if mine.Room != room || mine.Reason != protocol.ReasonDM || mine.DM == nil || *mine.DM != (protocol.Peer{User: "bob", Name: "Bob"}) {
		t.Fatalf("alice got %+v (dm %+v)", mine, mine.DM)
	}
	if _, err := hub.Send(ctx, bob, room, "m2", "hi alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := hub.Send(ctx, alice, room, "m3", "again"); err != nil {
		t.Fatal(err)
	}
	rooms, err := hub.Rooms(ctx, bob)
	if err != nil {
		t.Fatal(err)
	}
	if len(rooms) != 1 || rooms[0].Room != room || rooms[0].Head != 3 || rooms[0].Unread != 3 ||
		rooms[0].Last == nil || rooms[0].Last.ID != "m3" || rooms[0].DM == nil || rooms[0].DM.User != "alice" {
		t.Fatalf("bob's rooms: %+v", rooms)
	}
	if _, err := hub.Read(ctx, bob, room, 2); err != nil {
		t.Fatal(err)
	}
	rooms, _ = hub.Rooms(ctx, bob)
	if rooms[0].Read != 2 || rooms[0].Unread != 1 {
		t.Fatalf("after reading 2: %+v", rooms[0])
	}
	// A join is the sentinel: once its event is there, a duplicate dm
	// event would be too.
	joinAs(t, hub, "bob", "general", newRecorder())
	if got := waitN(t, bobRec, protocol.TypeRoom, 2); len(got) != 2 || got[1].Reason != protocol.ReasonJoined {
		t.Fatalf("bob's events %+v, want dm then joined", got)
	}
	if got := decoded(t, aliceRec, protocol.TypeRoom); len(got) != 1 {
		t.Fatalf("alice's events %+v, want one dm", got)
	}
}

// A join lists the room (reason joined, once); an explicit leave takes
// it out (reason left); a session closing is no leave; a DM that holds a
// message stays listed.
func TestJoinAndLeaveList(t *testing.T) {
	ctx := context.Background()
	hub := newHub(t, core.Config{})
	alice := auth.Identity{User: "alice", Name: "Alice"}
	_, other := follow(t, hub, alice)
	s := joinAs(t, hub, "alice", "general", newRecorder())
	if err := s.Join(ctx, "general", nil, false); err != nil { // again: already listed
		t.Fatal(err)
	}
	s.Close(core.DisconnectNormal)
	got := waitN(t, other, protocol.TypeRoom, 1)
	if got[0].Room != "general" || got[0].Reason != protocol.ReasonJoined || got[0].DM != nil {
		t.Fatalf("room event %+v", got[0])
	}
	rooms, err := hub.Rooms(ctx, alice)
	if err != nil || len(rooms) != 1 || rooms[0].Room != "general" {
		t.Fatalf("rooms after the session closed: %+v, %v", rooms, err)
	}
	if err := hub.Leave(ctx, alice, "general"); err != nil {
		t.Fatal(err)
	}
	if err := hub.Leave(ctx, alice, "general"); err != nil {
		t.Fatal(err)
	}
	got = waitN(t, other, protocol.TypeRoom, 2)
	if got[1].Room != "general" || got[1].Reason != protocol.ReasonLeft || got[1].Seq != got[0].Seq+1 {
		t.Fatalf("room event %+v after %+v", got[1], got[0])
	}
	dm := auth.DMRoom("alice", "bob")
	if _, err := hub.Send(ctx, alice, dm, "m1", "hi"); err != nil {
		t.Fatal(err)
	}
	if err := hub.Leave(ctx, alice, dm); err != nil {
		t.Fatal(err)
	}
	rooms, _ = hub.Rooms(ctx, alice)
	if len(rooms) != 1 || rooms[0].Room != dm {
		t.Fatalf("rooms: %+v, want the DM only", rooms)
	}
	if got = waitN(t, other, protocol.TypeRoom, 3); got[2].Reason != protocol.ReasonDM || len(got) != 3 {
		t.Fatalf("room events %+v, want joined, left, dm", got)
	}
	if err := hub.Leave(ctx, alice, "~x"); err == nil {
		t.Fatal("a leave of ~x was taken")
	}
}

// The user's stream is nobody's room: it cannot be sent to, read or
// joined by name, it counts against no room limit and has no presence.
func TestUserStreamIsNoRoom(t *testing.T) {
	ctx := context.Background()
	hub := newHub(t, core.Config{MaxRoomsPerSession: 1})
	alice := auth.Identity{User: "alice", Name: "Alice"}
	s, rec := follow(t, hub, alice)
	if err := s.Join(ctx, "general", nil, false); err != nil {
		t.Fatalf("a join next to the stream, at a limit of 1 room: %v", err)
	}
	for _, room := range []string{"~", core.UserStream("alice"), "~bob"} {
		if _, err := hub.Send(ctx, alice, room, "x", "hi"); err == nil {
			t.Errorf("send to %q taken", room)
		}
		if _, err := hub.History(ctx, alice, room, 0, 10); err == nil {
			t.Errorf("history of %q given", room)
		}
		if err := s.Join(ctx, core.UserStream("bob"), nil, false); err == nil {
			t.Errorf("join of bob's stream taken")
		}
	}
	if p := decoded(t, rec, protocol.TypePresence); len(p) != 0 {
		t.Fatalf("presence in the stream: %+v", p)
	}
}

// A chosen name wins over the token's from then on: new messages,
// presence (announced again at once) and the room list's DM peer show it.
func TestRename(t *testing.T) {
	ctx := context.Background()
	hub := newHub(t, core.Config{PresenceInterval: 10 * time.Millisecond})
	zoe := auth.Identity{User: "zoe", Name: "zoe"}
	watcher := newRecorder()
	joinAs(t, hub, "bob", "general", watcher)
	zs, err := hub.Connect(zoe, newRecorder(), core.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := zs.Join(ctx, "general", nil, false); err != nil {
		t.Fatal(err)
	}
	waitPresence(t, watcher, "zoe", "zoe")
	if _, err := hub.SetName(ctx, zoe, "\u202eevil"); err == nil {
		t.Fatal("a bidi override was taken as a name")
	}
	p, err := hub.SetName(ctx, zoe, " Zoe\u0308 Smith ")
	if err != nil || p != (core.Profile{User: "zoe", Name: "Zoë Smith"}) {
		t.Fatalf("SetName = %+v, %v", p, err)
	}
	waitPresence(t, watcher, "zoe", "Zoë Smith")
	m, err := hub.Send(ctx, zoe, "general", "m1", "hello")
	if err != nil || m.Name != "Zoë Smith" {
		t.Fatalf("message %+v, %v; want the new name", m, err)
	}
	if me, _ := hub.Me(ctx, zoe); me.Name != "Zoë Smith" {
		t.Fatalf("Me = %+v", me)
	}
	members, err := hub.Presence(ctx, auth.Identity{User: "bob"}, "general")
	if err != nil {
		t.Fatal(err)
	}
	for _, mb := range members {
		if mb.User == "zoe" && mb.Name != "Zoë Smith" {
			t.Fatalf("presence API: %+v", members)
		}
	}
	if _, err := hub.Send(ctx, auth.Identity{User: "bob", Name: "Bob"}, auth.DMRoom("bob", "zoe"), "d1", "hi"); err != nil {
		t.Fatal(err)
	}
	rooms, _ := hub.Rooms(ctx, auth.Identity{User: "bob"})
	if len(rooms) != 2 || rooms[0].DM == nil || rooms[0].DM.Name != "Zoë Smith" {
		t.Fatalf("bob's rooms: %+v", rooms)
	}
	for range 10 {
		if _, err = hub.SetName(ctx, zoe, "Z"); err != nil {
			break
		}
	}
	if code, _ := protocol.CodeOf(err); code != protocol.CodeRateLimited {
		t.Fatalf("ten renames at once: %v, want rate_limited", err)
	}
}

// waitPresence waits for an online presence event of user with name.
func waitPresence(t *testing.T, r *recorder, user, name string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		for _, e := range presenceOf(t, r) {
			if e.User == user && e.Name == name && e.Online != nil && *e.Online {
				return
			}
		}
		select {
		case <-r.more:
		case <-deadline:
			t.Fatalf("no presence of %s as %q in %+v", user, name, presenceOf(t, r))
		}
	}
}

// pauseSince is an engine whose next Since of one room waits, once armed,
// until released: a join is held after it began and before it lists.
type pauseSince struct {
	core.Engine
	room    string
	armed   atomic.Bool
	entered chan struct{}
	release chan struct{}
}

func (p *pauseSince) Since(ctx context.Context, room string, after uint64, limit int) (core.Page, error) {
	if room == p.room && p.armed.CompareAndSwap(true, false) {
		close(p.entered)
		<-p.release
	}
	return p.Engine.Since(ctx, room, after, limit)
}

// A join that began before an explicit leave of the same room (a poll in
// flight when its client left) does not put the room back in the list;
// a join after the leave does.
func TestLeaveWinsOverAnEarlierJoin(t *testing.T) {
	ctx := context.Background()
	p := &pauseSince{room: "general", entered: make(chan struct{}), release: make(chan struct{})}
	hub, _ := newHubOver(t, core.Config{}, func(st core.Engine) core.Engine { p.Engine = st; return p })
	alice := auth.Identity{User: "alice", Name: "Alice"}
	joinAs(t, hub, "alice", "general", newRecorder()).Close(core.DisconnectNormal)

	s, err := hub.Connect(alice, newRecorder(), core.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(core.DisconnectNormal)
	p.armed.Store(true)
	joined := make(chan error, 1)
	go func() { joined <- s.Join(ctx, "general", nil, false) }()
	<-p.entered
	if err := hub.Leave(ctx, alice, "general"); err != nil {
		t.Fatal(err)
	}
	close(p.release)
	if err := <-joined; err != nil {
		t.Fatal(err)
	}
	if rooms, err := hub.Rooms(ctx, alice); err != nil || len(rooms) != 0 {
		t.Fatalf("rooms after a leave that followed the join's start: %+v, %v", rooms, err)
	}
	if err := s.Join(ctx, "general", nil, false); err != nil {
		t.Fatal(err)
	}
	if rooms, err := hub.Rooms(ctx, alice); err != nil || len(rooms) != 1 || rooms[0].Room != "general" {
		t.Fatalf("rooms after a join that followed the leave: %+v, %v", rooms, err)
	}
}

// The joins made for the request that opened a session (Join,
// JoinRequested) leave out of the user's room list a room the user left
// after the session's fence; a join frame takes its own, so a room left
// and joined again on one connection is listed; a session without a
// fence lists what it joins.
func TestJoinFence(t *testing.T) {
	ctx := context.Background()
	hub := newHub(t, core.Config{})
	alice := auth.Identity{User: "alice", Name: "Alice"}
	listed := func(room string) bool {
		t.Helper()
		rooms, err := hub.Rooms(ctx, alice)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rooms {
			if r.Room == room {
				return true
			}
		}
		return false
	}
	fence := hub.JoinFence() // a request arrives
	for _, room := range []string{"random", "other"} {
		if err := hub.Leave(ctx, alice, room); err != nil { // and the user leaves, elsewhere
			t.Fatal(err)
		}
	}
	rec := newRecorder()
	s, err := hub.Connect(alice, rec, core.SessionOptions{Fence: fence})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(core.DisconnectNormal)
	if err := s.Join(ctx, "random", nil, false); err != nil {
		t.Fatal(err)
	}
	s.JoinRequested(ctx, "other", nil)
	if waitN(t, rec, protocol.TypeJoined, 2); listed("random") || listed("other") {
		t.Fatalf("the request's joins listed a room left after its fence: random %v, other %v", listed("random"), listed("other"))
	}
	s.Handle(ctx, protocol.Envelope{Type: protocol.TypeJoin, Room: "random", Ref: "j"})
	if waitN(t, rec, protocol.TypeJoined, 3); !listed("random") {
		t.Fatal("a join frame after the leave did not list the room")
	}
	other, err := hub.Connect(alice, newRecorder(), core.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(core.DisconnectNormal)
	if err := other.Join(ctx, "other", nil, false); err != nil {
		t.Fatal(err)
	}
	if !listed("other") {
		t.Fatal("a join without a fence, after the leave, did not list the room")
	}
}
