package browsertest

import (
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// openDM opens the direct conversation with peer through the page's form.
func (tb *tab) openDM(peer, room string) {
	tb.t.Helper()
	tb.do(
		chromedp.SetValue(chromedp.ID("dm-name"), peer),
		chromedp.Click(chromedp.CSS("#dm-form button")),
	)
	tb.waitJS(room+" to be the open room", `window.chatApp.active === `+jsString(room), 5*time.Second)
}

// TestReadsRestored: read positions come back from the server
// (GET /v1/rooms/{room}/reads, with the dm: name escaped in the path), not
// only from this browser's storage or from live receipts. A device that was
// away when its user read a conversation elsewhere shows it read after a
// reload, and a sender who opens the conversation in a new browser sees who
// has read it, though no receipt ever reached that browser.
func TestReadsRestored(t *testing.T) {
	srv := startServer(t)
	const dm = "dm:uma:vic"

	// Uma's laptop knows the conversation, then goes away.
	laptop := newUser(t).open("uma-laptop", srv.URL(), tabOptions{})
	laptop.login("uma")
	laptop.openDM("vic", dm)
	laptop.do(chromedp.Click(chromedp.CSS(`#rooms li[data-room="general"] .room-btn`)))
	laptop.waitJS("general to be open", `window.chatApp.active === 'general'`, 5*time.Second)
	laptop.do(chromedp.Navigate("about:blank"))

	// Vic writes; Uma reads it on her phone.
	vic := srv.login(t, "vic")
	vic.send(dm, "v1", "are you there?")
	vic.send(dm, "v2", "ping me when you read this")
	phone := newUser(t).open("uma-phone", srv.URL(), tabOptions{})
	phone.login("uma")
	phone.openDM("vic", dm)
	phone.waitText("ping me when you read this")
	var stored struct{ Reads map[string]uint64 }
	deadline := time.Now().Add(10 * time.Second)
	for stored.Reads["uma"] != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the server never stored uma's read position: %v", stored.Reads)
		}
		time.Sleep(50 * time.Millisecond)
		vic.do("GET", "/v1/rooms/dm%3Auma%3Avic/reads", nil, &stored)
	}

	// The laptop comes back: the conversation is read, though its own
	// storage says otherwise and the receipt went out while it was away.
	laptop.do(chromedp.Navigate(srv.URL()))
	laptop.waitConnected("")
	laptop.waitJS("the conversation loaded and read", `(function () {
	  var r = window.chatApp.rooms[`+jsString(dm)+`];
	  var li = document.querySelector('#dms li[data-room="`+dm+`"]');
	  return r && r.loaded && r.items.length === 2 && r.read === 2 && r.unread === 0 && li && li.getAttribute('data-unread') === '0';
	})()`, 10*time.Second)
	var localRead string
	laptop.mustEval(`localStorage.getItem('chatd.read.uma.`+dm+`') || ''`, &localRead)
	if localRead != "2" {
		t.Errorf("laptop: stored read position %q, want the server's 2", localRead)
	}

	// Vic opens the conversation in a new browser: "seen by uma".
	vicPage := newUser(t).open("vic", srv.URL(), tabOptions{})
	vicPage.login("vic")
	vicPage.openDM("uma", dm)
	vicPage.waitText("ping me when you read this")
	vicPage.waitJS("seen by uma", `(function () {
	  var n = document.querySelectorAll('#messages li.msg.mine');
	  var last = n[n.length - 1];
	  return last && last.getAttribute('data-seq') === '2' && /seen by uma/.test(last.textContent);
	})()`, 10*time.Second)
	for _, tb := range []*tab{laptop, phone, vicPage} {
		tb.checkCSP()
	}
}
