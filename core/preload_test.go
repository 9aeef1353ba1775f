package core_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"

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

// seedStore writes what fill writes to a new bbolt store at path, and
// closes it.
func seedStore(t *testing.T, path string, fill func(*bolt.Store) error) {
	t.Helper()
	store, err := bolt.Open(bolt.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	if err := fill(store); err != nil {
		t.Fatal(err)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
}

// hubOverStore makes a hub over the bbolt store at path, its name reads
// and listings counted; listed: the engine lists its users to the hub.
func hubOverStore(t *testing.T, path string, listed bool) (*core.Hub, *countingUsers) {
	t.Helper()
	var c *countingUsers
	hub, _ := newHubAt(t, path, core.Config{}, func(store core.Engine) core.Engine {
		c = &countingUsers{Engine: store}
		if listed {
			return listingUsers{c, store.(core.UserLister)}
		}
		return c
	})
	return hub, c
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
	seedStore(t, path, func(store *bolt.Store) error {
		if err := store.SetUserName(ctx, "alice", "Al", true); err != nil {
			return err
		}
		for _, ur := range [][2]string{{"alice", "general"}, {"bob", "general"}, {"carol", "general"}, {"bob", "random"}} {
			if _, err := store.AddUserRoom(ctx, ur[0], ur[1]); err != nil {
				return err
			}
		}
		return nil
	})
	for _, listed := range []bool{true, false} {
		t.Run(fmt.Sprint("listed=", listed), func(t *testing.T) {
			hub, c := hubOverStore(t, path, listed)
			if n, want := hub.UsersAtStart(), map[bool]int{true: 3, false: 0}[listed]; n != want {
				t.Fatalf("%d users at start, want %d", n, want)
			}
			p, err := hub.Me(ctx, auth.Identity{User: "alice", Name: "Alice"})
			if err != nil || p.Name != "Al" {
				t.Fatalf("Me = %+v, %v; want the chosen name Al", p, err)
			}
			s := joinAs(t, hub, "alice", "general", newRecorder())
			defer s.Close(core.DisconnectNormal)
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
		})
	}
}

// A room the engine dropped from a full list (MaxListedRooms), as the
// oldest, to list a new one is listed again by the user's next join of
// it, though the hub knew it listed a moment before: from its own join,
// or from reading the users at start.
func TestFullListDropsAreListedAgain(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "chat.db")
	seedStore(t, path, func(store *bolt.Store) error {
		// Added in turn, so that r000 is the oldest.
		for i := range core.MaxListedRooms {
			if _, err := store.AddUserRoom(ctx, "full", fmt.Sprintf("r%03d", i)); err != nil {
				return err
			}
		}
		return nil
	})
	for _, listed := range []bool{true, false} {
		t.Run(fmt.Sprint("listed=", listed), func(t *testing.T) {
			dir := t.TempDir()
			copyFile(t, path, filepath.Join(dir, "chat.db"))
			hub, _ := hubOverStore(t, filepath.Join(dir, "chat.db"), listed)
			full := auth.Identity{User: "full", Name: "full"}
			for _, room := range []string{"r000", "new", "r000"} {
				joinAs(t, hub, "full", room, newRecorder()).Close(core.DisconnectNormal)
			}
			rooms, err := hub.Rooms(ctx, full)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, r := range rooms {
				names = append(names, r.Room)
			}
			if len(names) != core.MaxListedRooms || !slices.Contains(names, "r000") || !slices.Contains(names, "new") {
				t.Fatalf("%d rooms listed, r000 %v, new %v; want %d with both", len(names),
					slices.Contains(names, "r000"), slices.Contains(names, "new"), core.MaxListedRooms)
			}
		})
	}
}

// copyFile copies the file at from to to.
func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
