package storetest

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/chatd/chatd/core"
)

// What core.UserStore adds, and the user's stream:
//
//   - A user's chosen and seen names are kept apart and survive a reopen;
//     users with neither are absent from UserNames.
//   - AddUserRoom and RemoveUserRoom report whether the list changed;
//     UserRooms lists the newest first (of rooms added at the same
//     instant, the one whose name sorts last first) and keeps at most
//     core.MaxListedRooms, dropping the oldest.
//   - RoomStates gives each room's bounds, newest message and the user's
//     read position, in the order asked, unknown rooms included.
//   - An engine that lists its users (core.UserLister) gives each user it
//     keeps anything of once, with their names and room list, and stops
//     when told to.
//   - A user's stream (core.UserStream) keeps core.UserStreamRetain
//     messages, whatever MaxMessages says.

func testUserNames(t *testing.T, f Factory) {
	fx := newFixture(t, f, nil)
	names := func(users ...string) map[string]core.UserNames {
		t.Helper()
		got, err := fx.Store.UserNames(fx.ctx, users)
		if err != nil {
			t.Fatalf("UserNames: %v", err)
		}
		return got
	}
	set := func(user, name string, chosen bool) {
		t.Helper()
		if err := fx.Store.SetUserName(fx.ctx, user, name, chosen); err != nil {
			t.Fatalf("SetUserName(%s, %q, %v): %v", user, name, chosen, err)
		}
	}
	if got := names("zoe", "bob"); len(got) != 0 {
		t.Fatalf("names before any were set: %v", got)
	}
	set("zoe", "zoe", false)
	set("zoe", "Zoë Smith", true)
	set("zoe", "Zoe S", false) // a token's name never overwrites the chosen one
	set("bob", "Bob", false)
	want := map[string]core.UserNames{"zoe": {Chosen: "Zoë Smith", Seen: "Zoe S"}, "bob": {Seen: "Bob"}}
	if got := names("zoe", "bob", "carol"); !equalNames(got, want) {
		t.Fatalf("UserNames = %v, want %v", got, want)
	}
	fx.reopen()
	if got := names("zoe", "bob", "carol"); !equalNames(got, want) {
		t.Fatalf("after reopen: UserNames = %v, want %v", got, want)
	}
}

func testEachUser(t *testing.T, f Factory) {
	fx := newFixture(t, f, nil)
	if _, ok := fx.Store.(core.UserLister); !ok {
		t.Skip("the engine does not list its users")
	}
	each := func(stopAfter int) map[string]string {
		t.Helper()
		got := make(map[string]string)
		err := fx.Store.(core.UserLister).EachUser(fx.ctx, func(user string, un core.UserNames, rooms [][]byte) bool {
			if _, dup := got[user]; dup {
				t.Fatalf("EachUser gave %s twice", user)
			}
			list := make([]string, len(rooms))
			for i, r := range rooms {
				list[i] = string(r)
			}
			slices.Sort(list)
			got[user] = fmt.Sprintf("%q/%q/%v", un.Chosen, un.Seen, list)
			return len(got) < stopAfter
		})
		if err != nil {
			t.Fatalf("EachUser: %v", err)
		}
		return got
	}
	if got := each(100); len(got) != 0 {
		t.Fatalf("users before any was kept: %v", got)
	}
	if err := fx.Store.SetUserName(fx.ctx, "zoe", "Zoë", true); err != nil {
		t.Fatal(err)
	}
	if err := fx.Store.SetUserName(fx.ctx, "bob", "Bob", false); err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{"general", "random"} {
		if _, err := fx.Store.AddUserRoom(fx.ctx, "bob", r); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := fx.Store.AddUserRoom(fx.ctx, "carol", "general"); err != nil {
		t.Fatal(err)
	}
	if _, err := fx.Store.AddUserRoom(fx.ctx, "dan", "general"); err != nil {
		t.Fatal(err)
	}
	if _, err := fx.Store.RemoveUserRoom(fx.ctx, "dan", "general"); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"zoe":   `"Zoë"/""/[]`,
		"bob":   `""/"Bob"/[general random]`,
		"carol": `""/""/[general]`,
		"dan":   `""/""/[]`,
	}
	fx.reopen()
	got := each(100)
	delete(want, "dan") // an engine may or may not keep a user whose list went empty
	if d, ok := got["dan"]; ok && d != `""/""/[]` {
		t.Fatalf("dan: %s, want an empty entry or none", d)
	}
	delete(got, "dan")
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("EachUser after reopen:\n got %v\nwant %v", got, want)
	}
	if got := each(2); len(got) != 2 {
		t.Fatalf("EachUser told to stop after 2 gave %d", len(got))
	}
}

func equalNames(a, b map[string]core.UserNames) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func testUserRooms(t *testing.T, f Factory) {
	fx := newFixture(t, f, nil)
	list := func() []string {
		t.Helper()
		got, err := fx.Store.UserRooms(fx.ctx, "alice")
		if err != nil {
			t.Fatalf("UserRooms: %v", err)
		}
		return got
	}
	add := func(room string, want bool) {
		t.Helper()
		if added, err := fx.Store.AddUserRoom(fx.ctx, "alice", room); err != nil || added != want {
			t.Fatalf("AddUserRoom(%s) = %v, %v; want %v", room, added, err, want)
		}
	}
	remove := func(room string, want bool) {
		t.Helper()
		if removed, err := fx.Store.RemoveUserRoom(fx.ctx, "alice", room); err != nil || removed != want {
			t.Fatalf("RemoveUserRoom(%s) = %v, %v; want %v", room, removed, err, want)
		}
	}
	if got := list(); len(got) != 0 {
		t.Fatalf("an empty list holds %v", got)
	}
	for _, room := range []string{"general", "dm:alice:bob", "random"} {
		add(room, true)
		fx.clock.Advance(time.Millisecond)
	}
	add("general", false)
	remove("nowhere", false)
	remove("random", true)
	remove("random", false)
	if got, want := list(), []string{"dm:alice:bob", "general"}; !slices.Equal(got, want) {
		t.Fatalf("UserRooms = %v, want %v", got, want)
	}
	if other, err := fx.Store.UserRooms(fx.ctx, "bob"); err != nil || len(other) != 0 {
		t.Fatalf("bob's list: %v, %v", other, err)
	}
	fx.reopen()
	if got, want := list(), []string{"dm:alice:bob", "general"}; !slices.Equal(got, want) {
		t.Fatalf("after reopen: UserRooms = %v, want %v", got, want)
	}
}

func testUserRoomsCap(t *testing.T, f Factory) {
	fx := newFixture(t, f, nil)
	n := core.MaxListedRooms + 5
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n { // at once, so that an engine with group commit commits them together
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := fx.Store.AddUserRoom(fx.ctx, "alice", fmt.Sprintf("room-%04d", i)); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("AddUserRoom: %v", err)
	}
	fx.clock.Advance(time.Millisecond)
	if added, err := fx.Store.AddUserRoom(fx.ctx, "alice", "late"); err != nil || !added {
		t.Fatalf("AddUserRoom(late) = %v, %v", added, err)
	}
	got, err := fx.Store.UserRooms(fx.ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != core.MaxListedRooms || got[0] != "late" {
		t.Fatalf("UserRooms: %d rooms, first %q; want %d, late first", len(got), got[0], core.MaxListedRooms)
	}
	// Every room was added before "late" (same stamp, or an earlier one),
	// and of rooms stamped alike the one whose name sorts first goes
	// first: room-0000 … room-0005 are gone.
	for i, room := range got[1:] {
		if want := fmt.Sprintf("room-%04d", n-1-i); room != want {
			t.Fatalf("UserRooms[%d] = %s, want %s", i+1, room, want)
		}
	}
}

func testRoomStates(t *testing.T, f Factory) {
	fx := newFixture(t, f, nil)
	msgs := fx.appendN("r1", "m", 3)
	reads := []core.ReadPosition{{Room: "r1", User: "alice", Seq: 2}, {Room: "r1", User: "bob", Seq: 3}}
	if err := fx.Store.SetReads(fx.ctx, reads); err != nil {
		t.Fatal(err)
	}
	got, err := fx.Store.RoomStates(fx.ctx, "alice", []string{"nowhere", "r1"})
	if err != nil {
		t.Fatalf("RoomStates: %v", err)
	}
	if len(got) != 2 {
		t.Fatalf("RoomStates returned %d rooms, want 2", len(got))
	}
	if st := got[0]; st.Room != "nowhere" || st.Head != 0 || st.First != 1 || st.Read != 0 || st.Last != nil {
		t.Errorf("unknown room: %+v", st)
	}
	st := got[1]
	if st.Room != "r1" || st.Head != 3 || st.First != 1 || st.Read != 2 || st.Last == nil || !st.Last.Equal(msgs[2]) {
		t.Errorf("r1: %+v (last %+v), want head 3, first 1, read 2, last %+v", st, st.Last, msgs[2])
	}
}

func testUserStreamRetention(t *testing.T, f Factory) {
	fx := newFixture(t, f, nil)
	stream := core.UserStream("alice")
	n := core.UserStreamRetain + 10
	fx.appendParallel(stream, "e", n)
	fx.appendParallel("room", "m", n)
	p := fx.since(stream, 0, 0)
	if want := uint64(n); p.Head != want || p.First != want-core.UserStreamRetain+1 {
		t.Fatalf("user stream bounds: head %d first %d; want head %d, %d retained", p.Head, p.First, want, core.UserStreamRetain)
	}
	if p := fx.since("room", 0, 0); p.First != 1 {
		t.Fatalf("a room pruned to %d like a user stream", p.First)
	}
}

// appendParallel stores ids prefix0..prefix(n-1) in room from n
// goroutines at once, so that an engine with group commit takes few
// commits; their order is the engine's.
func (fx *fixture) appendParallel(room, prefix string, n int) {
	fx.t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, _, err := fx.Store.Append(fx.ctx, msg(room, fmt.Sprintf("%s%d", prefix, i))); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		fx.t.Fatalf("Append(%s): %v", room, err)
	}
}
