package transporttest

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/chatd/chatd/core/protocol"
)

// Issue 11 across nodes on one Redis: a message sent on one node is
// edited through another, deleted by an admin on a third, delivered in
// seq order to a client on any node, replayed in its current state to a
// client that resumes on yet another, and an edit racing a delete of the
// same message across nodes is refused whenever it comes second.
func TestClusterEditDelete(t *testing.T) { runCluster(t, 3, Options{Hub: fast}, testClusterEditDelete) }

func testClusterEditDelete(t *testing.T, c *Cluster, dial Dialer) {
	const room = "cluster-edits"
	tok := c.Token(t, "alice", Claims{})
	onA, onB := dial(t, c.Nodes[0], tok, nil), dial(t, c.Nodes[1], tok, nil)
	admin := dial(t, c.Nodes[2], c.Token(t, "ops", Claims{Admin: true}), nil)
	bob := dial(t, c.Nodes[2], c.Token(t, "bob", Claims{}), []Join{{Room: room}})
	sendOK(t, onA, room, "m1", "helo", 1)
	sendOK(t, onB, room, "m2", "secret", 2)
	amendOK(t, onB, room, "e1", 1, "hello", 3)
	if again := amendOK(t, onA, room, "e1", 1, "hello!", 3); again.ID != "e1" {
		t.Fatalf("retry through another node: %+v", again)
	}
	wantError(t, "bob edits", amend(t, bob, room, "b1", 1, "mine"), protocol.CodeForbidden)
	amendOK(t, admin, room, "d1", 2, "", 4)
	current := []entry{
		{typ: protocol.TypeMessage, text: "hello", edited: true},
		{typ: protocol.TypeMessage, deleted: true},
		{typ: protocol.TypeEdit, target: 1, text: "hello"},
		{typ: protocol.TypeDelete, target: 2},
	}
	wantEntries(t, "live on "+c.ID(2), expectEntries(t, bob, room, 1, 4),
		entry{typ: protocol.TypeMessage, text: "helo"}, entry{typ: protocol.TypeMessage, text: "secret"},
		current[2], current[3])
	carol := dial(t, c.Nodes[0], c.Token(t, "carol", Claims{}), []Join{{Room: room, Since: ptr(0)}})
	wantEntries(t, "resumed on "+c.ID(0), expectEntries(t, carol, room, 1, 4), current...)

	// An edit and a delete of the same message race through two nodes.
	const races = 8
	head := uint64(4)
	for i := range races {
		head++
		sendOK(t, onA, room, fmt.Sprint("r", i), "race", head)
		target := head
		var wg sync.WaitGroup
		var (
			ed, del       protocol.Envelope
			edErr, delErr error
		)
		edID, delID := fmt.Sprint("re", i), fmt.Sprint("rd", i)
		wg.Go(func() {
			ed, edErr = onA.Do(Ctx(t), protocol.Envelope{Type: protocol.TypeEdit, Room: room, ID: edID, Seq: target, Text: "raced", Ref: edID})
		})
		wg.Go(func() {
			del, delErr = admin.Do(Ctx(t), protocol.Envelope{Type: protocol.TypeDelete, Room: room, ID: delID, Seq: target, Ref: delID})
		})
		wg.Wait()
		if edErr != nil || delErr != nil {
			t.Fatalf("race %d: %v, %v", i, edErr, delErr)
		}
		if del.Type != protocol.TypeAck {
			t.Fatalf("race %d: the delete failed: %+v", i, del)
		}
		switch {
		case ed.Type == protocol.TypeAck && ed.Seq < del.Seq:
			head += 2
		case ed.Type == protocol.TypeError && ed.Code == string(protocol.CodeNotFound):
			head++
		default:
			t.Fatalf("race %d: edit %+v, delete %+v; an edit after the delete must be refused", i, ed, del)
		}
		if del.Seq > head {
			t.Fatalf("race %d: delete seq %d beyond head %d", i, del.Seq, head)
		}
	}
	for _, cl := range []Client{bob, carol} {
		expectEntries(t, cl, room, 5, head)
	}
	fence(t, c.Nodes[1], room, bob, carol)
	for i := range c.Nodes {
		h := history(t, c.Nodes[i], tok, room)
		wantEntries(t, "history on "+c.ID(i), h.Messages[:4], current...)
		for _, m := range h.Messages {
			if strings.Contains(m.Text, "secret") || strings.Contains(m.Text, "race") {
				t.Fatalf("history on %s serves deleted text: %s", c.ID(i), protocol.Encode(m))
			}
		}
	}
}
