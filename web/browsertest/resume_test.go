package browsertest

import (
	"testing"
	"time"
)

// TestServerRestartResume: mid-conversation the server dies (SIGKILL) and
// comes back on the same port and data. Both pages reconnect by
// themselves (the dev secret is new, so they also sign in again), a
// message typed while the server was down is delivered once, and each
// page's list equals the server's history: same ids, same order, each
// once.
func TestServerRestartResume(t *testing.T) {
	srv := startServer(t)
	alice := newUser(t).open("alice", srv.URL(), tabOptions{})
	bob := newUser(t).open("bob", srv.URL(), tabOptions{})
	alice.login("alice")
	bob.login("bob")

	alice.send("before the crash 1")
	bob.waitText("before the crash 1")
	bob.send("before the crash 2")
	alice.waitText("before the crash 2")

	srv.kill()
	for _, tb := range []*tab{alice, bob} {
		tb.waitJS("the page to see the link down",
			`document.getElementById('conn').getAttribute('data-connected') === 'false'`, 10*time.Second)
	}
	alice.send("typed while the server was down")
	alice.waitJS("the message to wait as pending", `Array.prototype.some.call(document.querySelectorAll('#messages li.msg[data-state="pending"] .text'),
	  function (n) { return n.textContent === 'typed while the server was down'; })`, 5*time.Second)
	// The outbox is in localStorage, so it would survive a reload too.
	var stored int
	alice.mustEval(`Object.keys(localStorage).filter(function (k) { return k.indexOf('chatd.ob.alice.') === 0; }).length`, &stored)
	if stored != 1 {
		t.Errorf("outbox entries in localStorage = %d, want 1", stored)
	}

	srv.restart()
	alice.waitConnected("")
	bob.waitConnected("")
	bob.waitText("typed while the server was down")
	alice.waitText("typed while the server was down")
	bob.send("after the restart")
	alice.waitText("after the restart")

	want := []string{"before the crash 1", "before the crash 2", "typed while the server was down", "after the restart"}
	check := srv.login(t, "checker")
	hist := check.history("general")
	if len(hist) != len(want) {
		t.Fatalf("server history has %d messages, want %d: %+v", len(hist), len(want), hist)
	}
	for i, m := range hist {
		if m.Text != want[i] || m.Seq != uint64(i+1) {
			t.Errorf("history[%d] = seq %d %q, want seq %d %q", i, m.Seq, m.Text, i+1, want[i])
		}
	}
	for _, tb := range []*tab{alice, bob} {
		tb.waitTexts(want)
		tb.sameAsServer(check, "general")
		tb.checkCSP()
	}
	alice.mustEval(`Object.keys(localStorage).filter(function (k) { return k.indexOf('chatd.ob.alice.') === 0; }).length`, &stored)
	if stored != 0 {
		t.Errorf("outbox entries left in localStorage = %d, want 0", stored)
	}
}
