package core_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/core/protocol"
)

// presenceOf decodes r's presence frames, a batch as one envelope per
// change.
func presenceOf(t *testing.T, r *recorder) []protocol.Envelope {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []protocol.Envelope
	for _, f := range r.frames {
		if f.Type != protocol.TypePresence {
			continue
		}
		var e protocol.Envelope
		if err := json.Unmarshal(f.Data, &e); err != nil {
			t.Fatal(err)
		}
		out = append(out, e.Unbatch()...) // a batch, as one envelope per user
	}
	return out
}

func joinAs(t *testing.T, hub *core.Hub, user, room string, rec *recorder) *core.Session {
	t.Helper()
	return joinWith(t, hub, user, room, rec, core.SessionOptions{})
}

// joinWith is joinAs with session options.
func joinWith(t *testing.T, hub *core.Hub, user, room string, rec *recorder, opts core.SessionOptions) *core.Session {
	t.Helper()
	s, err := hub.Connect(auth.Identity{User: user, Name: user}, rec, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Join(context.Background(), room, nil, false); err != nil {
		t.Fatal(err)
	}
	return s
}

// Presence is coalesced per pass: each user who came online is announced
// once, a user who came and went between two passes costs nothing, and
// one who left is announced once.
func TestPresenceCoalesced(t *testing.T) {
	hub := newHub(t, core.Config{PresenceInterval: 20 * time.Millisecond})
	watcher := newRecorder()
	joinAs(t, hub, "watcher", "r", watcher)
	var sessions []*core.Session
	for i := range 3 {
		sessions = append(sessions, joinAs(t, hub, fmt.Sprintf("u%d", i), "r", newRecorder()))
	}
	// A visitor joins and leaves at once: within one pass, most likely;
	// the assertion below holds either way (once online, once offline, or
	// nothing at all).
	joinAs(t, hub, "visitor", "r", newRecorder()).Close(core.DisconnectNormal)
	eventuallyCore(t, "u0..u2 online", func() bool { return len(onlineUsers(presenceOf(t, watcher))) >= 4 })
	sessions[1].Close(core.DisconnectNormal)
	eventuallyCore(t, "u1 offline", func() bool {
		for _, e := range presenceOf(t, watcher) {
			if e.User == "u1" && !*e.Online {
				return true
			}
		}
		return false
	})
	// A fence: one more user, announced after everything above.
	joinAs(t, hub, "fence", "r", newRecorder())
	eventuallyCore(t, "the fence online", func() bool { return onlineUsers(presenceOf(t, watcher))["fence"] == 1 })
	events := presenceOf(t, watcher)
	counts := map[string]int{}
	for _, e := range events {
		counts[fmt.Sprintf("%s:%v", e.User, *e.Online)]++
	}
	for _, user := range []string{"watcher", "u0", "u1", "u2", "fence"} {
		if counts[user+":true"] != 1 {
			t.Fatalf("%s announced online %d times, want once: %v", user, counts[user+":true"], counts)
		}
	}
	if counts["u1:false"] != 1 || counts["visitor:true"] != counts["visitor:false"] || counts["visitor:true"] > 1 {
		t.Fatalf("presence events %v: want u1 offline once, the visitor once each way or not at all", counts)
	}
}

func onlineUsers(events []protocol.Envelope) map[string]int {
	out := map[string]int{}
	for _, e := range events {
		if e.Online != nil && *e.Online {
			out[e.User]++
		}
	}
	return out
}

// Past PresenceMaxMembers, a room gets the count of users online instead
// of per-user events, once per pass and only when it changed; the
// presence API still lists everyone.
func TestPresenceCountInLargeRooms(t *testing.T) {
	hub := newHub(t, core.Config{PresenceInterval: 20 * time.Millisecond, PresenceMaxMembers: 3})
	watcher := newRecorder()
	joinAs(t, hub, "watcher", "big", watcher)
	for i := range 9 {
		joinAs(t, hub, fmt.Sprintf("u%d", i), "big", newRecorder())
	}
	eventuallyCore(t, "a count of 10", func() bool {
		ev := presenceOf(t, watcher)
		return len(ev) > 0 && ev[len(ev)-1].Count != nil && *ev[len(ev)-1].Count == 10
	})
	for _, e := range presenceOf(t, watcher) {
		if e.Count == nil && e.User == "u8" {
			t.Fatalf("a per-user event %+v in a room past the threshold", e)
		}
	}
	members, err := hub.Presence(context.Background(), auth.Identity{User: "watcher"}, "big")
	if err != nil || len(members) != 10 {
		t.Fatalf("presence API lists %d, %v; want all 10", len(members), err)
	}
}

// A room past PresenceCountPace members gets its count no more often
// than its pace (here an hour a member past two, on a fake clock): a
// moved count waits, and a later pass sends it once the pace has
// passed, without another change.
func TestPresenceCountPaced(t *testing.T) {
	clk := &clock{}
	hub := newHub(t, core.Config{PresenceInterval: time.Hour, PresenceMaxMembers: 1, PresenceCountPace: 2, Now: clk.Now})
	ctx := context.Background()
	watcher := newRecorder()
	ws := joinAs(t, hub, "watcher", "big", watcher)
	for i := range 3 {
		joinAs(t, hub, fmt.Sprintf("u%d", i), "big", newRecorder())
	}
	lastCount := func() int {
		if err := ws.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		ev := presenceOf(t, watcher)
		if len(ev) == 0 || ev[len(ev)-1].Count == nil {
			return 0
		}
		return *ev[len(ev)-1].Count
	}
	hub.FlushPresence()
	if n := lastCount(); n != 4 {
		t.Fatalf("first count %d, want 4", n)
	}
	joinAs(t, hub, "u3", "big", newRecorder())
	hub.FlushPresence()
	if n := lastCount(); n != 4 {
		t.Fatalf("a count of %d within the pace (2.5 h for 5 members), want it held at 4", n)
	}
	clk.Advance(3 * time.Hour)
	hub.FlushPresence() // no change since: the owed count goes
	if n := lastCount(); n != 5 {
		t.Fatalf("after the pace: count %d, want 5", n)
	}
}

// A pass sends a room one presence envelope for all its changes, sorted
// by user, to sessions that read batches, and the changes one by one to
// the others; a pass with one change sends the plain form.
func TestPresenceBatchedPerPass(t *testing.T) {
	hub := newHub(t, core.Config{PresenceInterval: time.Hour}) // passes only when flushed
	watcher, plain := newRecorder(), newRecorder()
	joinWith(t, hub, "watcher", "r", watcher, core.SessionOptions{Batched: true})
	joinAs(t, hub, "watcher", "r", plain) // a second session, without batches
	var sessions []*core.Session
	for _, user := range []string{"u2", "u0", "u1"} {
		sessions = append(sessions, joinAs(t, hub, user, "r", newRecorder()))
	}
	hub.FlushPresence()
	got := awaitEnvelopes(t, watcher, protocol.TypePresence, 1)
	want := []protocol.PresenceChange{{User: "u0", Name: "u0", Online: true}, {User: "u1", Name: "u1", Online: true},
		{User: "u2", Name: "u2", Online: true}, {User: "watcher", Name: "watcher", Online: true}}
	if len(got) != 1 || got[0].User != "" || got[0].Online != nil || !slices.Equal(got[0].Changes, want) {
		t.Fatalf("got %+v, want one envelope with changes %+v", got, want)
	}
	// The session without batches gets the same changes one by one.
	for i, e := range awaitEnvelopes(t, plain, protocol.TypePresence, len(want)) {
		if e.Changes != nil || e.Online == nil || (protocol.PresenceChange{User: e.User, Name: e.Name, Online: *e.Online}) != want[i] {
			t.Fatalf("the plain session's envelope %d is %+v, want %+v in the plain form", i, e, want[i])
		}
	}
	sessions[2].Close(core.DisconnectNormal)
	hub.FlushPresence()
	if e := awaitEnvelopes(t, watcher, protocol.TypePresence, 2)[1]; e.User != "u1" || e.Online == nil || *e.Online || e.Changes != nil {
		t.Fatalf("got %+v, want u1's plain offline", e)
	}
}
