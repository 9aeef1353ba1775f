package bolt

import (
	"context"
	"slices"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/chatd/chatd/core"
)

// EachUser leaves out a user whose room list holds a corrupt entry (it
// is read as it comes, where the error shows) and lists the others.
func TestEachUserSkipsACorruptList(t *testing.T) {
	ctx := context.Background()
	s := open(t, Config{})
	for _, u := range []string{"amy", "bad", "cy"} {
		if _, err := s.AddUserRoom(ctx, u, "general"); err != nil {
			t.Fatal(err)
		}
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketUsers).Bucket([]byte("bad")).Bucket(bucketUserList).Put([]byte("x"), []byte("short"))
	})
	if err != nil {
		t.Fatal(err)
	}
	var users []string
	err = s.EachUser(ctx, func(user string, _ core.UserNames, _ [][]byte) bool {
		users = append(users, user)
		return true
	})
	if err != nil || !slices.Equal(users, []string{"amy", "cy"}) {
		t.Fatalf("EachUser gave %v, %v; want amy and cy", users, err)
	}
	if _, err := s.UserRooms(ctx, "bad"); err == nil {
		t.Fatal("the corrupt list read without an error")
	}
}
