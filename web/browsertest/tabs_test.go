package browsertest

import (
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestTabsConverge: three tabs of one user converge on the same rooms,
// the same messages and the same read state. A room read in one tab is no
// longer unread in the others.
func TestTabsConverge(t *testing.T) {
	srv := startServer(t)
	uma := newUser(t)
	tab1 := uma.open("tab1", srv.URL(), tabOptions{})
	tab1.login("uma")
	// The other tabs share the browser context, so they find the session
	// and sign in by themselves.
	tab2 := uma.open("tab2", srv.URL(), tabOptions{})
	tab3 := uma.open("tab3", srv.URL(), tabOptions{})
	tabs := []*tab{tab1, tab2, tab3}
	for _, tb := range tabs {
		tb.waitConnected("")
	}

	// A room joined in one tab shows up in the others.
	tab1.do(
		chromedp.SetValue(chromedp.ID("join-name"), "team"),
		chromedp.Click(chromedp.CSS("#join-form button")),
	)
	tab1.waitJS("team to be the open room", `window.chatApp.active === 'team'`, 5*time.Second)
	for _, tb := range tabs[1:] {
		tb.waitJS("the team room in the list", `!!document.querySelector('#rooms li[data-room="team"]')`, 10*time.Second)
		tb.waitJS("general to stay open", `window.chatApp.active === 'general'`, time.Second)
	}
	tab1.do(chromedp.Click(chromedp.CSS(`#rooms li[data-room="general"] .room-btn`)))
	tab1.waitJS("general to be open again", `window.chatApp.active === 'general'`, 5*time.Second)

	// Someone else writes in team: unread in every tab.
	vic := srv.login(t, "vic")
	vic.send("team", "v1", "first for the team")
	vic.send("team", "v2", "second for the team")
	for _, tb := range tabs {
		tb.waitJS("2 unread in team", `document.querySelector('#rooms li[data-room="team"]').getAttribute('data-unread') === '2'`, 10*time.Second)
	}

	// Sends from different tabs: every tab shows the same messages.
	tab2.send("from tab 2")
	tab3.send("from tab 3")
	check := srv.login(t, "checker")
	for _, tb := range tabs {
		tb.waitText("from tab 2")
		tb.waitText("from tab 3")
		tb.sameAsServer(check, "general")
	}

	// Reading team in tab 1 clears it everywhere.
	tab1.do(chromedp.Click(chromedp.CSS(`#rooms li[data-room="team"] .room-btn`)))
	tab1.waitText("second for the team")
	for _, tb := range tabs {
		tb.waitJS("team to be read", `document.querySelector('#rooms li[data-room="team"]').getAttribute('data-unread') === '0'`, 10*time.Second)
	}
	// Tab 3 opens team: nothing there is marked unread.
	tab3.do(chromedp.Click(chromedp.CSS(`#rooms li[data-room="team"] .room-btn`)))
	tab3.waitText("second for the team")
	var unread int
	tab3.mustEval(`document.querySelectorAll('#messages li.msg.unread').length`, &unread)
	if unread != 0 {
		t.Errorf("tab3: %d messages still marked unread after tab1 read them", unread)
	}
	// The server has the position too: a new browser gets it from there.
	for _, tb := range tabs {
		tb.checkCSP()
	}
}
