package transporttest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/protocol"
)

// A read fans a receipt out to the room's members, the reader's own
// sessions included; read positions never go down.
func TestReceipts(t *testing.T) { Run(t, testReceipts) }

func testReceipts(t *testing.T, dial Dialer) {
	const room = "receipts"
	e := NewEnv(t, Options{})
	alice := dial(t, e, e.Token(t, "alice", Claims{}), []Join{{Room: room}})
	bob := dial(t, e, e.Token(t, "bob", Claims{}), []Join{{Room: room}})
	twoToRead(t, room, alice, bob)
	// Receipts are ephemeral: a poll client gets one only while one of its
	// polls is open, so the read is repeated (it announces the same
	// position again) until each member has seen the receipt.
	refs := 0
	read := func(c Client, seq uint64) protocol.Envelope {
		refs++
		return reply(t, c, protocol.Envelope{Type: protocol.TypeRead, Room: room, Seq: seq, Ref: fmt.Sprint("rd-", refs)})
	}
	if got := read(bob, 2); got.Type != protocol.TypeAck || got.Seq != 2 {
		t.Fatalf("read: %+v", got)
	}
	for _, c := range []Client{alice, bob} { // bob's own sessions get it too
		untilMatch(t, c, "bob's receipt for 2", func(r protocol.Envelope) bool {
			return r.Type == protocol.TypeReceipt && r.Room == room && r.User == "bob" && r.Seq == 2
		}, func() { read(bob, 2) })
	}
	// Reading an older seq keeps the position at 2.
	if got := read(bob, 1); got.Type != protocol.TypeAck || got.Seq != 2 {
		t.Fatalf("read 1 after 2: %+v; the position must not go down", got)
	}
	// Beyond the head is a bad request.
	wantError(t, "read beyond head", read(bob, 99), protocol.CodeBadRequest)
	// The HTTP read fans out too, and no receipt ever lowers bob's position.
	carol := e.Token(t, "carol", Claims{})
	for _, c := range []Client{alice, bob} {
		untilMatch(t, c, "carol's receipt for 1", func(r protocol.Envelope) bool {
			if r.Type == protocol.TypeReceipt && r.User == "bob" && r.Seq != 2 {
				t.Fatalf("bob's position went to %d", r.Seq)
			}
			return r.Type == protocol.TypeReceipt && r.User == "carol" && r.Seq == 1
		}, func() {
			if status, body := httpDo(t, e, http.MethodPost, "/v1/read", carol, map[string]any{"room": room, "seq": 1}); status != http.StatusOK {
				t.Fatalf("POST /v1/read: %d %s", status, body)
			}
		})
	}
}

// The receipts of one read flush go to a room's members in one envelope:
// reads carries every reader's position, and a flush with one reader
// sends the plain form.
func TestBatchedReceipts(t *testing.T) { Run(t, testBatchedReceipts) }

func testBatchedReceipts(t *testing.T, dial Dialer) {
	const room = "batched-receipts"
	e := NewEnv(t, Options{Hub: core.Config{ReadFlush: time.Hour}}) // flushed by the test only
	alice := dial(t, e, e.Token(t, "alice", Claims{}), []Join{{Room: room}})
	bob := dial(t, e, e.Token(t, "bob", Claims{}), []Join{{Room: room}})
	twoToRead(t, room, alice, bob)
	carol, dave := e.Token(t, "carol", Claims{}), e.Token(t, "dave", Claims{})
	httpRead := func(token string, seq uint64) {
		if status, body := httpDo(t, e, http.MethodPost, "/v1/read", token, map[string]any{"room": room, "seq": seq}); status != http.StatusOK {
			t.Fatalf("POST /v1/read: %d %s", status, body)
		}
	}
	refs := 0
	// Receipts are ephemeral (a poll client gets them only while a poll
	// is open), so the reads are repeated until each member has seen them.
	want := map[string]uint64{"bob": 2, "carol": 1, "dave": 2}
	for _, c := range []Client{alice, bob} {
		got := untilMatch(t, c, "the flush's receipts in one envelope", func(r protocol.Envelope) bool {
			return r.Type == protocol.TypeReceipt && r.Room == room && r.Reads != nil
		}, func() {
			refs++
			if got := reply(t, bob, protocol.Envelope{Type: protocol.TypeRead, Room: room, Seq: 2, Ref: fmt.Sprint("rd-", refs)}); got.Type != protocol.TypeAck || got.Seq != 2 {
				t.Fatalf("read: %+v", got)
			}
			httpRead(carol, 1)
			httpRead(dave, 2)
			e.Hub.FlushReads(Ctx(t))
		})
		if !reflect.DeepEqual(got.Reads, want) || got.User != "" || got.Seq != 0 {
			t.Fatalf("%s got %+v, want one receipt with reads %v and no user or seq", c.Transport(), got, want)
		}
	}
	// One reader in a flush: the plain form.
	for _, c := range []Client{alice, bob} {
		got := untilMatch(t, c, "carol's receipt for 2", func(r protocol.Envelope) bool {
			return r.Type == protocol.TypeReceipt && r.Room == room && r.User == "carol"
		}, func() {
			httpRead(carol, 2)
			e.Hub.FlushReads(Ctx(t))
		})
		if got.Seq != 2 || got.Reads != nil {
			t.Fatalf("%s got %+v, want carol's plain receipt for 2", c.Transport(), got)
		}
	}
}

// A client that leaves batch=1 out, as one written for the contract's
// first version, gets each position and presence change of a batch in
// the plain form.
func TestPlainClientsGetPlainEnvelopes(t *testing.T) { Run(t, testPlainClients) }

func testPlainClients(t *testing.T, dial Dialer) {
	const room = "plain"
	e := NewEnv(t, Options{Plain: true, PollInterval: 100 * time.Millisecond,
		Hub: core.Config{ReadFlush: time.Hour, PresenceInterval: time.Hour}}) // flushed by the test
	alice := dial(t, e, e.Token(t, "alice", Claims{}), []Join{{Room: room}})
	bob := dial(t, e, e.Token(t, "bob", Claims{}), []Join{{Room: room}})
	twoToRead(t, room, alice, bob)
	carol := e.Token(t, "carol", Claims{})
	plain := func(r protocol.Envelope) {
		if r.Batched() {
			t.Fatalf("%s: a client without batch=1 got %+v", alice.Transport(), r)
		}
	}
	// Ephemeral: repeated until alice has seen both in one flush's worth.
	read, refs := map[string]uint64{}, 0
	untilMatch(t, alice, "bob's and carol's plain receipts", func(r protocol.Envelope) bool {
		plain(r)
		if r.Type == protocol.TypeReceipt && r.Room == room {
			read[r.User] = r.Seq
		}
		return read["bob"] == 2 && read["carol"] == 1
	}, func() {
		refs++
		reply(t, bob, protocol.Envelope{Type: protocol.TypeRead, Room: room, Seq: 2, Ref: fmt.Sprint("rd-", refs)})
		if status, body := httpDo(t, e, http.MethodPost, "/v1/read", carol, map[string]any{"room": room, "seq": 1}); status != http.StatusOK {
			t.Fatalf("POST /v1/read: %d %s", status, body)
		}
		e.Hub.FlushReads(Ctx(t))
	})
	online, tries := map[string]bool{}, 0
	untilMatch(t, alice, "two arrivals of one pass, each plain", func(p protocol.Envelope) bool {
		plain(p)
		if p.Type == protocol.TypePresence && p.Online != nil && *p.Online {
			online[p.User] = true
		}
		// Any pass's pair: on a loaded machine a pass's envelopes may
		// reach a poll client after the wait of the try that made them.
		for k := 1; k <= tries; k++ {
			if online[fmt.Sprintf("p%da", k)] && online[fmt.Sprintf("p%db", k)] {
				return true
			}
		}
		return false
	}, func() {
		tries++
		for _, who := range []string{"a", "b"} {
			user := fmt.Sprintf("p%d%s", tries, who)
			dial(t, e, e.Token(t, user, Claims{}), []Join{{Room: room}})
		}
		e.Hub.FlushPresence()
	})
}

// twoToRead has alice send room two messages and waits until alice and
// bob have both.
func twoToRead(t *testing.T, room string, alice, bob Client) {
	t.Helper()
	for i, id := range []string{"m1", "m2"} {
		if ack, err := alice.Send(Ctx(t), room, id, "read me"); err != nil || ack.Seq != uint64(i+1) {
			t.Fatalf("send: %+v, %v", ack, err)
		}
	}
	for _, c := range []Client{alice, bob} {
		expectSeqs(t, c, room, 1, 2)
	}
}

// untilMatch repeats act until c receives an envelope that match accepts;
// other envelopes are skipped. Each wait is short and the whole bounded:
// this is for ephemeral events that a poll client can miss between polls.
func untilMatch(t testing.TB, c Client, what string, match func(protocol.Envelope) bool, act func()) protocol.Envelope {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		act()
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		for {
			e, err := c.Next(ctx)
			if err != nil {
				break
			}
			if match(e) {
				cancel()
				return e
			}
		}
		cancel()
	}
	t.Fatalf("%s: %s never arrived", c.Transport(), what)
	return protocol.Envelope{}
}

// Typing reaches the room's other users but none of the typer's own
// sessions.
func TestTyping(t *testing.T) { Run(t, testTyping) }

func testTyping(t *testing.T, dial Dialer) {
	const room = "typing"
	// Typing is ephemeral: a poll client sees it only while one of its
	// polls is open, so typists here keep signalling until the event has
	// been seen. TypingInterval 1ms lets every signal fan out.
	e := NewEnv(t, Options{Hub: core.Config{TypingInterval: time.Millisecond}})
	aliceTok := e.Token(t, "alice", Claims{Name: "Alice A"})
	alice := dial(t, e, aliceTok, []Join{{Room: room}})
	alice2 := dial(t, e, aliceTok, []Join{{Room: room}})
	bob := dial(t, e, e.Token(t, "bob", Claims{}), []Join{{Room: room}})
	ty := untilSeen(t, bob, protocol.TypeTyping, func() {
		if _, err := alice.Do(Ctx(t), protocol.Envelope{Type: protocol.TypeTyping, Room: room}); err != nil {
			t.Fatal(err)
		}
	})
	if ty.Room != room || ty.User != "alice" || ty.Name != "Alice A" {
		t.Fatalf("bob got %+v, want alice typing", ty)
	}
	if ack, err := alice.Send(Ctx(t), room, "after-typing", "hi"); err != nil || ack.Type != protocol.TypeAck {
		t.Fatalf("send: %+v, %v", ack, err)
	}
	if m := nextNot(t, bob, protocol.TypePresence, protocol.TypeTyping); m.Type != protocol.TypeMessage || m.ID != "after-typing" {
		t.Fatalf("bob got %+v, want the message", m)
	}
	// The typist's own sessions never get their typing events.
	for name, c := range map[string]Client{"alice": alice, "alice's 2nd session": alice2} {
		if m := nextNot(t, c, protocol.TypePresence); m.Type != protocol.TypeMessage || m.ID != "after-typing" {
			t.Fatalf("%s got %+v, want the message and no typing event for the typer", name, m)
		}
	}
	// Over HTTP the same.
	bobTok := e.Token(t, "bob", Claims{})
	for _, c := range []Client{alice, alice2} {
		ty := untilSeen(t, c, protocol.TypeTyping, func() {
			if status, body := httpDo(t, e, http.MethodPost, "/v1/typing", bobTok, map[string]string{"room": room}); status != http.StatusOK {
				t.Fatalf("POST /v1/typing: %d %s", status, body)
			}
		})
		if ty.User != "bob" {
			t.Fatalf("got %+v, want bob typing", ty)
		}
	}
}

// untilSeen repeats act until c receives an envelope of type typ, which it
// returns; presence envelopes are skipped, anything else fails.
func untilSeen(t testing.TB, c Client, typ string, act func()) protocol.Envelope {
	t.Helper()
	return untilMatch(t, c, typ, func(e protocol.Envelope) bool {
		if e.Type != typ && e.Type != protocol.TypePresence {
			t.Fatalf("waiting for %s, got %+v", typ, e)
		}
		return e.Type == typ
	}, act)
}

// Presence: a user's first session in a room announces them online, their
// last one leaving announces them offline, and GET presence agrees.
func TestPresence(t *testing.T) { Run(t, testPresence) }

func testPresence(t *testing.T, dial Dialer) {
	const room = "lobby"
	e := NewEnv(t, Options{PollInterval: 100 * time.Millisecond})
	aliceTok := e.Token(t, "alice", Claims{Name: "Alice"})
	alice := dial(t, e, aliceTok, []Join{{Room: room}})
	if p := nextOf(t, alice, protocol.TypePresence); p.User != "alice" || p.Online == nil || !*p.Online {
		t.Fatalf("alice's own join: %+v", p)
	}
	wantPresence(t, e, aliceTok, room, member{"alice", "Alice"})

	bobTok := e.Token(t, "bob", Claims{Name: "Bob B"})
	bob := dial(t, e, bobTok, []Join{{Room: room}})
	wantPresence(t, e, aliceTok, room, member{"alice", "Alice"}, member{"bob", "Bob B"})
	if alice.Transport() != "poll" {
		// Streams see every presence event; a poll client can miss one
		// between two polls, and relies on GET presence instead.
		if p := nextOf(t, alice, protocol.TypePresence); p.Room != room || p.User != "bob" || p.Name != "Bob B" || p.Online == nil || !*p.Online {
			t.Fatalf("got %+v, want bob online", p)
		}
	}

	// A second session of bob's announces nothing; its leaving neither.
	bob2 := dial(t, e, bobTok, []Join{{Room: room}})
	if got := reply(t, bob2, protocol.Envelope{Type: protocol.TypeLeave, Room: room, Ref: "l2"}); got.Type != protocol.TypeAck {
		t.Fatalf("leave: %+v", got)
	}
	if alice.Transport() != "poll" {
		fenceStrict(t, e, room, alice)
	}
	wantPresence(t, e, aliceTok, room, member{"alice", "Alice"}, member{"bob", "Bob B"})

	// Bob's last session leaves: offline. A poll client's presence is a
	// lease of twice the poll interval, so the room sees bob go once it
	// runs out; a stream's ends with the leave.
	if got := reply(t, bob, protocol.Envelope{Type: protocol.TypeLeave, Room: room, Ref: "l1"}); got.Type != protocol.TypeAck {
		t.Fatalf("leave: %+v", got)
	}
	if bob.Transport() == "poll" {
		eventuallyPresence(t, e, aliceTok, room, member{"alice", "Alice"})
	} else {
		if p := nextNot(t, alice); p.Type != protocol.TypePresence || p.User != "bob" || p.Online == nil || *p.Online {
			t.Fatalf("got %+v, want bob offline", p)
		}
		wantPresence(t, e, aliceTok, room, member{"alice", "Alice"})
	}

	// Closing the connection does the same as leaving.
	carol := dial(t, e, e.Token(t, "carol", Claims{}), []Join{{Room: room}})
	wantPresence(t, e, aliceTok, room, member{"alice", "Alice"}, member{"carol", "carol"})
	carol.Close()
	eventuallyPresence(t, e, aliceTok, room, member{"alice", "Alice"})
}

// The presence changes of one pass go to a room's members in one
// envelope, sorted by user.
func TestBatchedPresence(t *testing.T) { Run(t, testBatchedPresence) }

func testBatchedPresence(t *testing.T, dial Dialer) {
	const room = "batched-presence"
	e := NewEnv(t, Options{PollInterval: 100 * time.Millisecond, Hub: core.Config{PresenceInterval: time.Hour}}) // passes when flushed
	alice := dial(t, e, e.Token(t, "alice", Claims{Name: "Alice"}), []Join{{Room: room}})
	e.Hub.FlushPresence() // alice's own arrival
	// Presence is ephemeral (a poll client gets it only while a poll is
	// open), so each try brings two more users and flushes.
	tries := 0
	got := untilMatch(t, alice, "two arrivals in one presence envelope", func(p protocol.Envelope) bool {
		return p.Type == protocol.TypePresence && len(p.Changes) >= 2
	}, func() {
		tries++
		for _, who := range []string{"a", "b"} {
			user := fmt.Sprintf("p%d%s", tries, who)
			dial(t, e, e.Token(t, user, Claims{Name: strings.ToUpper(user)}), []Join{{Room: room}})
		}
		e.Hub.FlushPresence()
	})
	if got.Room != room || got.User != "" || got.Online != nil || len(got.Changes) != 2 {
		t.Fatalf("%s got %+v, want one envelope with two changes and no user", alice.Transport(), got)
	}
	first := strings.TrimSuffix(got.Changes[0].User, "a")
	want := []protocol.PresenceChange{{User: first + "a", Name: strings.ToUpper(first + "a"), Online: true},
		{User: first + "b", Name: strings.ToUpper(first + "b"), Online: true}}
	if !slices.Equal(got.Changes, want) {
		t.Fatalf("%s got changes %+v, want %+v", alice.Transport(), got.Changes, want)
	}
}

// eventuallyPresence waits, bounded, until GET presence shows want.
func eventuallyPresence(t testing.TB, e *Env, token, room string, want ...member) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		status, body := httpDo(t, e, http.MethodGet, "/v1/rooms/"+room+"/presence", token, nil)
		var got struct {
			Users []member `json:"users"`
		}
		if status == http.StatusOK && json.Unmarshal(body, &got) == nil && slices.Equal(got.Users, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("presence of %s: %s, want %v", room, body, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type member struct{ User, Name string }

// wantPresence checks GET /v1/rooms/{room}/presence.
func wantPresence(t testing.TB, e *Env, token, room string, want ...member) {
	t.Helper()
	status, body := httpDo(t, e, http.MethodGet, "/v1/rooms/"+room+"/presence", token, nil)
	var got struct {
		Users []member `json:"users"`
	}
	if err := json.Unmarshal(body, &got); err != nil || status != http.StatusOK {
		t.Fatalf("presence: %d %s", status, body)
	}
	if len(want) == 0 {
		want = []member{}
	}
	if got.Users == nil {
		got.Users = []member{}
	}
	if !reflect.DeepEqual(got.Users, want) {
		t.Fatalf("presence of %s: %+v, want %+v", room, got.Users, want)
	}
}

// fenceStrict is fence for a client that must see nothing at all, not
// even an ephemeral event, before the fence message.
func fenceStrict(t testing.TB, e *Env, room string, c Client) {
	t.Helper()
	m := hubSend(t, e, room, "fence")
	if got := nextNot(t, c); got.Type != protocol.TypeMessage || got.Seq != m.Seq {
		t.Fatalf("got %+v, want nothing before the fence message %d", got, m.Seq)
	}
}

// PresenceCount: in a room above PresenceMaxMembers online, presence is
// the count. Every tier gets it; a held poll gets it with its next answer
// (the count alone does not answer it: see poll's conn.Write), here at
// the hold's end, and the message that follows comes after it.
func TestPresenceCount(t *testing.T) { Run(t, testPresenceCount) }

func testPresenceCount(t *testing.T, dial Dialer) {
	const room = "hall"
	e := NewEnv(t, Options{PollHold: 200 * time.Millisecond,
		Hub: core.Config{PresenceMaxMembers: 1, PresenceInterval: 10 * time.Millisecond, SendRate: 1e6, SendBurst: 1e6}})
	alice := dial(t, e, e.Token(t, "alice", Claims{}), []Join{{Room: room}})
	bob := dial(t, e, e.Token(t, "bob", Claims{}), []Join{{Room: room}})
	for {
		p := nextOf(t, alice, protocol.TypePresence)
		if p.Room != room {
			t.Fatalf("presence of %q", p.Room)
		}
		if p.Count != nil && *p.Count == 2 {
			break
		}
		if p.Count == nil && p.User != "alice" {
			t.Fatalf("a per-user presence event in a count room: %+v", p)
		}
	}
	sendOK(t, bob, room, "m1", "hi", 1)
	if m := nextNot(t, alice, protocol.TypePresence); m.Type != protocol.TypeMessage || m.Seq != 1 {
		t.Fatalf("after the count: %+v, want message 1", m)
	}
}
