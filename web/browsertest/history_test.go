package browsertest

import (
	"fmt"
	"testing"
	"time"
)

// TestLongHistoryWindowed: with a long history the DOM keeps at most 150
// message nodes. Scrolling up loads older pages (history?before=) until
// the first message; scrolling down slides the window back to the newest.
func TestLongHistoryWindowed(t *testing.T) {
	srv := startServer(t)
	// 20 users × 20 messages stays within each user's send burst.
	const users, each = 20, 20
	total := users * each
	for u := 0; u < users; u++ {
		a := srv.login(t, fmt.Sprintf("writer%d", u))
		for i := 0; i < each; i++ {
			a.send("general", fmt.Sprintf("w%d-%d", u, i), fmt.Sprintf("message %d from writer %d", i, u))
		}
	}
	alice := newUser(t).open("alice", srv.URL(), tabOptions{})
	alice.login("alice")

	type view struct {
		Nodes, First, Last int
		Older              string
	}
	look := func() view {
		t.Helper()
		var v view
		alice.mustEval(`(function () {
		  var n = document.querySelectorAll('#messages li.msg');
		  return {nodes: n.length,
		    first: n.length ? +n[0].getAttribute('data-seq') : 0,
		    last: n.length ? +n[n.length - 1].getAttribute('data-seq') : 0,
		    older: document.getElementById('older').textContent};
		})()`, &v)
		if v.Nodes > 150 {
			t.Fatalf("%d message nodes in the DOM; the window holds at most 150", v.Nodes)
		}
		return v
	}
	alice.waitJS("the newest message", fmt.Sprintf(`(function () {
	  var n = document.querySelectorAll('#messages li.msg'); return n.length && +n[n.length - 1].getAttribute('data-seq') === %d; })()`, total), 10*time.Second)

	// Scroll to the top until the first message shows.
	deadline := time.Now().Add(30 * time.Second)
	v := look()
	for v.First != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("never reached the first message: %+v", v)
		}
		prev := v.First
		alice.mustEval(`document.getElementById('scroller').scrollTop = 0`, nil)
		alice.waitJS("older messages", fmt.Sprintf(`+document.querySelector('#messages li.msg').getAttribute('data-seq') < %d`, prev), 10*time.Second)
		v = look()
	}
	alice.waitJS("the start of the room", `/start of/.test(document.getElementById('older').textContent)`, 5*time.Second)
	if v.Last >= total {
		t.Errorf("at the top the window still holds the newest message: %+v", v)
	}

	// And back down to the newest.
	deadline = time.Now().Add(30 * time.Second)
	for v.Last != total {
		if time.Now().After(deadline) {
			t.Fatalf("never got back to the newest message: %+v", v)
		}
		prev := v.Last
		alice.mustEval(`(function (s) { s.scrollTop = s.scrollHeight; })(document.getElementById('scroller'))`, nil)
		alice.waitJS("newer messages", fmt.Sprintf(`(function () {
		  var n = document.querySelectorAll('#messages li.msg'); return +n[n.length - 1].getAttribute('data-seq') > %d; })()`, prev), 10*time.Second)
		v = look()
	}
	// Every seq in the window is there once, in order.
	var seqs []int
	alice.mustEval(`Array.prototype.map.call(document.querySelectorAll('#messages li.msg'), function (li) { return +li.getAttribute('data-seq'); })`, &seqs)
	for i := 1; i < len(seqs); i++ {
		if seqs[i] != seqs[i-1]+1 {
			t.Fatalf("window not contiguous at %d: %v", i, seqs)
		}
	}
	alice.checkCSP()
}
