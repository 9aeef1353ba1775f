package core_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/core/bolt"
)

// countingUsers is an engine with its reads of names and its listings
// of joined rooms counted. It does not list its users.
type countingUsers struct {
	core.Engine
	names, adds atomic.Int32
}

func (c *countingUsers) UserNames(ctx context.Context, users []string) (map[string]core.UserNames, error) {
	c.names.Add(1)
	return c.Engine.UserNames(ctx, users)
}

func (c *countingUsers) AddUserRoom(ctx context.Context, user, room string) (bool, error) {
	c.adds.Add(1)
	return c.Engine.AddUserRoom(ctx, user, room)
}

// listingUsers is countingUsers that lists its users as the engine
// under it does.
type listingUsers struct {
	*countingUsers
	list core.UserLister
}

func (l listingUsers) EachUser(ctx context.Context, fn func(string, core.UserNames, [][]byte) bool) error {
	return l.list.EachUser(ctx, fn)
}

// A hub over an engine that lists its users reads each user's names and
// room list when it is made: after a restart, the user's name and a join
// of a room in their list cost no engine read or listing, and the name
// is the one they chose. Over the same engine without the list (the
// control), the same calls read the name and list the room. The read
// stops at its bounds.
func TestUsersReadAtStart(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "chat.db")
	store, err := bolt.Open(bolt.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.SetUserName(ctx, "alice", "Al", true); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"alice", "bob", "carol"} {
		if _, err := store.AddUserRoom(ctx, u, "general"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := store.AddUserRoom(ctx, "bob", "random"); err != nil {
		t.Fatal(err)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	for _, listed := range []bool{true, false} {
		store, err := bolt.Open(bolt.Config{Path: path})
		if err != nil {
			t.Fatal(err)
		}
		c := &countingUsers{Engine: store}
		var eng core.Engine = c
		if listed {
			eng = listingUsers{c, store}
		}
		hub := core.New(eng, core.Config{})
		if n, want := hub.UsersAtStart(), map[bool]int{true: 3, false: 0}[listed]; n != want {
			t.Fatalf("listed %v: %d users at start, want %d", listed, n, want)
		}
		p, err := hub.Me(ctx, auth.Identity{User: "alice", Name: "Alice"})
		if err != nil || p.Name != "Al" {
			t.Fatalf("listed %v: Me = %+v, %v; want the chosen name Al", listed, p, err)
		}
		s := joinAs(t, hub, "alice", "general", newRecorder())
		reads, adds := c.names.Load(), c.adds.Load()
		switch {
		case listed && (reads != 0 || adds != 0):
			t.Fatalf("users read at start, yet %d name reads and %d listings", reads, adds)
		case !listed && (reads != 1 || adds != 1):
			t.Fatalf("control: %d name reads and %d listings, want 1 and 1", reads, adds)
		}
		if listed {
			if u, pairs := core.PreloadUsers(hub, 2, 100); u != 2 || pairs != 3 {
				t.Fatalf("read at most 2 users: %d users, %d rooms; want 2, 3 (alice, bob by id)", u, pairs)
			}
			if u, pairs := core.PreloadUsers(hub, 100, 2); u != 1 || pairs != 1 {
				t.Fatalf("read at most 2 rooms: %d users, %d rooms; want alice's one (bob's two would pass)", u, pairs)
			}
		}
		s.Close(core.DisconnectNormal)
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := hub.Shutdown(sctx); err != nil {
			t.Error(err)
		}
		cancel()
		if err := store.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// A user whose room list is full gets no listed marks at start: a join
// of one of their rooms lists it through the engine (which may have
// dropped it, as the oldest, for a room listed since), where a user
// with room to spare joins without an engine call.
func TestUsersReadAtStartSkipsFullLists(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "chat.db")
	store, err := bolt.Open(bolt.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, core.MaxListedRooms)
	for i := range core.MaxListedRooms { // concurrent, so that commits group
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := store.AddUserRoom(ctx, "full", fmt.Sprintf("r%03d", i)); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	if _, err := store.AddUserRoom(ctx, "spare", "general"); err != nil {
		t.Fatal(err)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	store, err = bolt.Open(bolt.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	c := &countingUsers{Engine: store}
	hub := core.New(listingUsers{c, store}, core.Config{})
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := hub.Shutdown(sctx); err != nil {
			t.Error(err)
		}
		if err := store.Close(); err != nil {
			t.Error(err)
		}
	})
	if n := hub.UsersAtStart(); n != 2 {
		t.Fatalf("%d users at start, want 2", n)
	}
	joinAs(t, hub, "spare", "general", newRecorder())
	if n := c.adds.Load(); n != 0 {
		t.Fatalf("a join of a listed room of a user with room to spare listed it %d times, want 0", n)
	}
	joinAs(t, hub, "full", "r000", newRecorder())
	if n := c.adds.Load(); n != 1 {
		t.Fatalf("a join of a room of a user with a full list listed it %d times, want 1", n)
	}
}
