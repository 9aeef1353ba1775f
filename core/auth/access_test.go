package auth

import (
	"strings"
	"testing"

	"github.com/chatd/chatd/core/protocol"
)

func TestCanAccess(t *testing.T) {
	user := func(u string, rooms ...string) Identity { return Identity{User: u, Name: u, Rooms: rooms} }
	free := func(u string) Identity { return Identity{User: u, Name: u} } // Rooms nil: claim absent
	tests := []struct {
		name string
		id   Identity
		room string
		ok   bool
	}{
		{"absent rooms allows any room", free("alice"), "general", true},
		{"absent rooms, empty name", free("alice"), "", true},
		{"empty rooms allows none", Identity{User: "alice", Rooms: []string{}}, "general", false},

		{"dm: a", free("alice"), "dm:alice:bob", true},
		{"dm: b", free("bob"), "dm:alice:bob", true},
		{"dm: outsider", free("carol"), "dm:alice:bob", false},
		{"dm: admin outsider", Identity{User: "carol", Admin: true}, "dm:alice:bob", false},
		{"dm unsorted: a", free("alice"), "dm:bob:alice", false},
		{"dm unsorted: b", free("bob"), "dm:bob:alice", false},
		{"dm with self", free("alice"), "dm:alice:alice", true},
		{"dm missing other (suffix)", free("alice"), "dm::alice", false},
		{"dm missing other (prefix)", free("alice"), "dm:alice:", false},
		{"dm one id", free("alice"), "dm:alice", false},
		{"dm bare", free("alice"), "dm:", false},
		{"dm prefix of a longer id", free("ali"), "dm:alice:bob", false},
		{"dm suffix of a longer id", free("ob"), "dm:alice:bob", false},
		{"empty user", Identity{}, "dm::", false},

		{"colon ids: a", free("org:alice"), "dm:org:alice:org:bob", true},
		{"colon ids: b", free("org:bob"), "dm:org:alice:org:bob", true},
		{"colon ids: org", free("org"), "dm:org:alice:org:bob", false},
		{"colon ids: alice", free("alice"), "dm:org:alice:org:bob", false},
		{"colon ids: bob", free("bob"), "dm:org:alice:org:bob", false},
		{"colon ids: org:alice:org", free("org:alice:org"), "dm:org:alice:org:bob", false},
		{"colon ids: unsorted", free("org:alice"), "dm:org:bob:org:alice", false},
		// The name is ambiguous when ids contain ':'; both readings are open.
		{"ambiguous: a", free("a"), "dm:a:b:c", true},
		{"ambiguous: b:c", free("b:c"), "dm:a:b:c", true},
		{"ambiguous: a:b", free("a:b"), "dm:a:b:c", true},
		{"ambiguous: c", free("c"), "dm:a:b:c", true},
		{"ambiguous: b", free("b"), "dm:a:b:c", false},

		{"exact name", user("alice", "general", "team-*"), "general", true},
		{"exact name is not a prefix", user("alice", "general", "team-*"), "general2", false},
		{"prefix pattern", user("alice", "general", "team-*"), "team-red", true},
		{"prefix pattern, bare prefix", user("alice", "general", "team-*"), "team-", true},
		{"prefix pattern, shorter", user("alice", "general", "team-*"), "team", false},
		{"unlisted room", user("alice", "general", "team-*"), "random", false},
		{"dm not listed", user("alice", "general", "team-*"), "dm:alice:bob", false},
		{"dm:* allows own dm", user("alice", "dm:*"), "dm:alice:bob", true},
		{"dm:* keeps the dm rule", user("carol", "dm:*"), "dm:alice:bob", false},
		{"dm:* is not general", user("alice", "dm:*"), "general", false},
		{"exact dm", user("alice", "dm:alice:bob"), "dm:alice:bob", true},
		{"other exact dm", user("alice", "dm:alice:bob"), "dm:alice:carol", false},
		{"star allows all", user("alice", "*"), "anything", true},
		{"star keeps the dm rule", user("carol", "*"), "dm:alice:bob", false},
		{"star is only special at the end", user("alice", "te*m"), "team", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.id.CanAccess(tt.room)
			if tt.ok {
				if err != nil {
					t.Errorf("CanAccess(%q) = %v, want nil", tt.room, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("CanAccess(%q) = nil, want forbidden", tt.room)
			}
			if got := codeOf(t, err); got != protocol.CodeForbidden {
				t.Errorf("code = %s, want forbidden", got)
			}
		})
	}
}

func TestDMRoom(t *testing.T) {
	for _, pair := range [][2]string{{"alice", "bob"}, {"bob", "alice"}} {
		room := DMRoom(pair[0], pair[1])
		if room != "dm:alice:bob" {
			t.Errorf("DMRoom(%q, %q) = %q", pair[0], pair[1], room)
		}
		for _, u := range pair {
			if err := (Identity{User: u}).CanAccess(room); err != nil {
				t.Errorf("%s cannot use %s: %v", u, room, err)
			}
		}
	}
	room := DMRoom("org:zed", "org:amy")
	for _, u := range []string{"org:zed", "org:amy"} {
		if err := (Identity{User: u}).CanAccess(room); err != nil {
			t.Errorf("%s cannot use %s: %v", u, room, err)
		}
	}
}

func TestDMPeer(t *testing.T) {
	for _, tt := range []struct {
		room, user, peer string
		ok               bool
	}{
		{"dm:alice:bob", "alice", "bob", true},
		{"dm:alice:bob", "bob", "alice", true},
		{"dm:alice:bob", "carol", "", false},
		{"dm:bob:alice", "alice", "", false}, // not sorted: open to nobody
		{"dm:alice:alice", "alice", "alice", true},
		{"general", "alice", "", false},
		{"dm:a:b:c", "a", "b:c", true},
		{"dm:a:b:c", "c", "a:b", true},
	} {
		peer, ok := DMPeer(tt.room, tt.user)
		if peer != tt.peer || ok != tt.ok {
			t.Errorf("DMPeer(%q, %q) = %q, %v; want %q, %v", tt.room, tt.user, peer, ok, tt.peer, tt.ok)
		}
		if ok != (Identity{User: tt.user}.CanAccess(tt.room) == nil && strings.HasPrefix(tt.room, DMPrefix)) {
			t.Errorf("DMPeer(%q, %q) disagrees with CanAccess", tt.room, tt.user)
		}
	}
}
