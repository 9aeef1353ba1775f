package browsertest

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"
)

// visibilityHook lets a test hide and show the page: headless Chromium
// always reports a visible page, so the test stands in for the browser.
const visibilityHook = `(function () {
  var vis = 'visible';
  Object.defineProperty(document, 'visibilityState', {configurable: true, get: function () { return vis; }});
  Object.defineProperty(document, 'hidden', {configurable: true, get: function () { return vis === 'hidden'; }});
  window.__setVisible = function (v) { vis = v ? 'visible' : 'hidden'; document.dispatchEvent(new Event('visibilitychange')); };
})();`

// with returns the tab for a subtest, so its failures stop the subtest.
func (tb *tab) with(t *testing.T) *tab {
	c := *tb
	c.t = t
	return &c
}

func (a *api) with(t *testing.T) *api {
	c := *a
	c.t = t
	return &c
}

// str evaluates a string expression.
func (tb *tab) str(expr string) string {
	tb.t.Helper()
	var s string
	tb.mustEval(expr, &s)
	return s
}

// waitConnText waits until the connection indicator reads want.
func (tb *tab) waitConnText(want string, timeout time.Duration) {
	tb.t.Helper()
	tb.waitJS("the indicator to read "+jsString(want), `document.getElementById('conn-text').textContent === `+jsString(want), timeout)
}

// openRoom clicks a room in the list.
func (tb *tab) openRoom(room string) {
	tb.t.Helper()
	tb.do(chromedp.Click(chromedp.CSS(`#rooms li[data-room=` + jsString(room) + `] .room-btn`)))
	tb.waitJS("room "+room+" open", `window.chatApp.active === `+jsString(room), 5*time.Second)
}

// joinRoom joins (and opens) a room through the form.
func (tb *tab) joinRoom(room string) {
	tb.t.Helper()
	tb.do(
		chromedp.SetValue(chromedp.ID("join-name"), room),
		chromedp.Click(chromedp.CSS("#join-form button")),
	)
	tb.waitJS("room "+room+" open", `window.chatApp.active === `+jsString(room), 5*time.Second)
}

// TestPageReadsLikeAChat: the page speaks plainly and behaves like a chat,
// on a modern page (alice, WebSocket) and a legacy one (bob, long-polling):
// nothing about connections before sign-in, plain connection words with
// the tier and level in the tooltip, clickable http(s) links only, day
// separators (history included), own messages marked, the typing line
// cleared by the typist's message, the unread count in the tab title,
// presence refreshed on poll and marked unknown while offline, a real
// retry countdown, and a phone-width layout that fits.
func TestPageReadsLikeAChat(t *testing.T) {
	srv := startServer(t)
	admin := srv.loginAdmin(t, "ops")
	carol := srv.login(t, "carol")
	// alice backs off for a few seconds, so the countdown can be watched.
	alice := newUser(t).open("alice", srv.URL(), tabOptions{preScript: visibilityHook +
		`window.chatdClientOptions = {upgradeDelayMs: [100, 600], backoffBaseMs: 4000, backoffCapMs: 6000};`})
	bob := newUser(t).open("bob", srv.URL(), tabOptions{preScript: legacyScript + visibilityHook +
		`window.chatdClientOptions = {presenceRefreshMs: 400};`})
	tabs := []*tab{alice, bob}

	t.Run("nothing about connections before sign-in", func(t *testing.T) {
		for _, tb := range tabs {
			tb := tb.with(t)
			tb.waitJS("the sign-in form", `!document.getElementById('login').hidden`, 10*time.Second)
			var shown bool
			tb.mustEval(`document.getElementById('conn').offsetParent !== null || document.getElementById('conn-reason').offsetParent !== null`, &shown)
			if shown {
				t.Errorf("%s: the connection indicator shows on the sign-in screen", tb.name)
			}
			if text := tb.str(`document.body.innerText`); regexp.MustCompile(`(?i)offline|connect|websocket|level|poll`).MatchString(text) {
				t.Errorf("%s: the sign-in screen talks about connections: %q", tb.name, text)
			}
		}
	})
	alice.login("alice")
	bob.login("bob")

	t.Run("plain words for the connection", func(t *testing.T) {
		for _, c := range []struct {
			tb         *tab
			tier, text string
		}{{alice, "websocket", "Connected"}, {bob, "poll", "Connected (compatibility mode)"}} {
			tb := c.tb.with(t)
			tb.waitConnected(c.tier)
			tb.waitConnText(c.text, 5*time.Second)
			title := tb.str(`document.getElementById('conn').title`)
			if !strings.Contains(title, c.tier) || !strings.Contains(title, "Level 0") {
				t.Errorf("%s: tooltip %q, want the tier %s and level 0 in it", tb.name, title, c.tier)
			}
			if r := tb.str(`document.getElementById('conn-reason').textContent`); r != "" {
				t.Errorf("%s: next to the indicator: %q, want nothing at level 0", tb.name, r)
			}
		}
	})

	link := srv.URL() + "/status.html"
	linkText := "docs: " + link + ", or https://example.com/a_(b)?q=1&r=2. Not javascript:alert(document.domain) nor data:text/html,<script>alert(1)</script> nor JAVASCRIPT:alert(1)"
	t.Run("links become anchors, http and https only", func(t *testing.T) {
		alice := alice.with(t)
		alice.send(linkText)
		for _, tb := range tabs {
			tb := tb.with(t)
			tb.waitText(linkText) // the text shows verbatim, anchors included
			var anchors []struct{ Href, Text, Rel, Target string }
			tb.mustEval(`Array.prototype.map.call(document.querySelectorAll('#messages li.msg:last-child .text a'), function (a) {
			  return {href: a.getAttribute('href'), text: a.textContent, rel: a.rel, target: a.target}; })`, &anchors)
			want := []string{link, "https://example.com/a_(b)?q=1&r=2"}
			if len(anchors) != len(want) {
				t.Fatalf("%s: anchors %+v, want %q only", tb.name, anchors, want)
			}
			for i, a := range anchors {
				if a.Href != want[i] || a.Text != want[i] || a.Rel != "noopener noreferrer" || a.Target != "_blank" {
					t.Errorf("%s: anchor %+v, want href %q, rel noopener noreferrer, target _blank", tb.name, a, want[i])
				}
			}
		}
		// The anchor works: a click opens the page it names, in a new tab.
		alice.do(chromedp.Click(chromedp.CSS(`#messages a[href=` + jsString(link) + `]`)))
		deadline := time.Now().Add(10 * time.Second)
		for {
			targets, err := chromedp.Targets(alice.ctx)
			if err != nil {
				t.Fatal(err)
			}
			var opened *target.Info
			for _, ti := range targets {
				if ti.Type == "page" && ti.URL == link {
					opened = ti
				}
			}
			if opened != nil {
				ctx, cancel := context.WithTimeout(alice.ctx, 5*time.Second)
				_, _ = chromedp.Call(ctx, target.CloseTarget, target.CloseTargetParams{TargetID: opened.TargetID})
				cancel()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("clicking the link opened no tab at %s", link)
			}
			select { // a bounded poll of the browser's targets, as waitJS polls the page
			case <-alice.ctx.Done():
				t.Fatal(alice.ctx.Err())
			case <-time.After(50 * time.Millisecond):
			}
		}
	})

	t.Run("own messages are marked", func(t *testing.T) {
		bob := bob.with(t)
		bob.send("hi from bob")
		for _, tb := range tabs {
			tb := tb.with(t)
			tb.waitText("hi from bob")
			var bg struct{ Mine, Other string }
			tb.mustEval(`(function () {
			  var mine = document.querySelector('#messages li.msg.mine'), other = document.querySelector('#messages li.msg:not(.mine)');
			  return {mine: mine ? getComputedStyle(mine).backgroundColor : '', other: other ? getComputedStyle(other).backgroundColor : ''};
			})()`, &bg)
			if bg.Mine == "" || bg.Other == "" || bg.Mine == bg.Other || bg.Mine == "rgba(0, 0, 0, 0)" {
				t.Errorf("%s: own messages look like the others: background %q, others %q", tb.name, bg.Mine, bg.Other)
			}
		}
	})

	t.Run("date separators", func(t *testing.T) {
		// Today's messages: one "Today" line, before the first of them.
		for _, tb := range tabs {
			tb := tb.with(t)
			first := tb.str(`(function () { var n = document.querySelector('#messages > li');
			  return n ? n.className + ':' + n.textContent : ''; })()`)
			if first != "day-sep:Today" {
				t.Errorf("%s: the list starts with %q, want the Today separator", tb.name, first)
			}
			var n int
			tb.mustEval(`document.querySelectorAll('#messages li.day-sep').length`, &n)
			if n != 1 {
				t.Errorf("%s: %d separators among today's messages, want 1", tb.name, n)
			}
		}
		// A room whose history spans days: the server's stamps are all of
		// today, so the page is handed a history page (its own event path)
		// that dates the same seqs three days ago, yesterday twice, and now.
		for i := 1; i <= 4; i++ {
			carol.with(t).send("days", fmt.Sprintf("d%d", i), fmt.Sprintf("day message %d", i))
		}
		for _, tb := range tabs {
			tb := tb.with(t)
			tb.joinRoom("days")
			tb.waitTexts([]string{"day message 1", "day message 2", "day message 3", "day message 4"})
			tb.mustEval(`(function () {
			  function at(daysAgo, h) { var d = new Date(); d.setDate(d.getDate() - daysAgo); d.setHours(h, 0, 0, 0); return d.getTime(); }
			  var m = window.chatApp.rooms.days.items;
			  window.chatApp.client.emit('history', {room: 'days', head: 4, first: 1, before: 0, messages: [
			    {seq: 1, id: m[0].id, from: 'carol', text: 'day message 1', ts: at(3, 12)},
			    {seq: 2, id: m[1].id, from: 'carol', text: 'day message 2', ts: at(1, 10)},
			    {seq: 3, id: m[2].id, from: 'carol', text: 'day message 3', ts: at(1, 11)}]});
			  return true;
			})()`, nil)
			var threeDaysAgo string
			tb.mustEval(`(function () { var d = new Date(); d.setDate(d.getDate() - 3); d.setHours(12, 0, 0, 0);
			  return d.toLocaleDateString(undefined, {weekday: 'long', year: 'numeric', month: 'long', day: 'numeric'}); })()`, &threeDaysAgo)
			want := []string{"sep " + threeDaysAgo, "msg day message 1", "sep Yesterday", "msg day message 2", "msg day message 3", "sep Today", "msg day message 4"}
			wantJSON := jsString(strings.Join(want, "|"))
			tb.waitJS("separators between the days", `Array.prototype.map.call(document.querySelectorAll('#messages > li'), function (li) {
			  return /day-sep/.test(li.className) ? 'sep ' + li.textContent : 'msg ' + li.querySelector('.text').textContent;
			}).join('|') === `+wantJSON, 5*time.Second)
			tb.openRoom("general")
		}
	})

	t.Run("the typing line clears when the message arrives", func(t *testing.T) {
		alice, carol := alice.with(t), carol.with(t)
		carol.do("POST", "/v1/typing", map[string]string{"room": "general"}, nil)
		alice.waitJS("carol's typing line", `document.getElementById('typing').textContent === 'carol is typing…'`, 5*time.Second)
		carol.send("general", "t1", "typed by carol")
		alice.waitText("typed by carol")
		// The line would otherwise linger up to 4 s after the typing event.
		alice.waitJS("the typing line to clear", `document.getElementById('typing').textContent === ''`, time.Second)
	})

	t.Run("unread count in the tab title", func(t *testing.T) {
		alice, bob, carol := alice.with(t), bob.with(t), carol.with(t)
		bob.waitText("typed by carol")
		bob.waitJS("nothing unread yet", `document.title === 'chatd'`, 5*time.Second)
		bob.mustEval(`window.__setVisible(false), true`, nil)
		for i := 1; i <= 3; i++ {
			carol.send("general", fmt.Sprintf("u%d", i), fmt.Sprintf("unread %d", i))
		}
		bob.waitText("unread 3")
		bob.waitJS("(3) in the hidden page's title", `document.title === '(3) chatd'`, 5*time.Second)
		// alice sees the room, so nothing is unread for her.
		alice.waitText("unread 3")
		alice.waitJS("a plain title on the page being read", `document.title === 'chatd'`, 5*time.Second)
		bob.mustEval(`window.__setVisible(true), true`, nil)
		bob.waitJS("the title cleared once read", `document.title === 'chatd'`, 5*time.Second)

		// A room not being viewed counts too, until it is opened.
		bob.joinRoom("side")
		bob.openRoom("general")
		carol.send("side", "s1", "over here")
		bob.waitJS("(1) for the room not in view", `document.title === '(1) chatd'`, 10*time.Second)
		bob.openRoom("side")
		bob.waitText("over here")
		bob.waitJS("the title cleared once the room is open", `document.title === 'chatd'`, 5*time.Second)
		bob.openRoom("general")
	})

	t.Run("poll clients refresh presence", func(t *testing.T) {
		bob := bob.with(t)
		bob.waitJS("alice here", `!!document.querySelector('#presence li[data-user="alice"]')`, 10*time.Second)
		// Presence events between two polls are lost: forget alice, as a
		// lost event would, and the periodic refresh brings her back.
		bob.mustEval(`delete window.chatApp.rooms.general.presence.alice, true`, nil)
		bob.waitJS("alice back in the list", `!!window.chatApp.rooms.general.presence.alice &&
		  !!document.querySelector('#presence li[data-user="alice"]')`, 5*time.Second)
	})

	t.Run("short polling at level 3", func(t *testing.T) {
		admin, carol, bob := admin.with(t), carol.with(t), bob.with(t)
		admin.setLevel(3)
		carol.send("general", "l3", "at level 3") // answers bob's held poll now
		bob.waitConnText("Checking every 5 s", 15*time.Second)
		if title := bob.str(`document.getElementById('conn').title`); !strings.Contains(title, "Level 3") {
			t.Errorf("bob: tooltip %q, want level 3 in it", title)
		}
		admin.setLevel(0)
		bob.waitConnText("Connected (compatibility mode)", 15*time.Second)
	})

	t.Run("offline: countdown and presence unknown", func(t *testing.T) {
		alice, bob := alice.with(t), bob.with(t)
		for _, tb := range []*tab{alice, bob} {
			tb.waitJS("someone here", `document.querySelectorAll('#presence li[data-user]').length === 2`, 10*time.Second)
			if note := tb.str(`document.getElementById('presence-note').hidden ? '' : 'shown'`); note != "" {
				t.Errorf("%s: presence marked unknown while connected", tb.name)
			}
		}
		srv.kill()
		for _, tb := range []*tab{alice, bob} {
			tb.waitJS("presence marked unknown", `!document.getElementById('presence-note').hidden &&
			  /\bunknown\b/.test(document.getElementById('presence-box').className) &&
			  document.getElementById('presence-note').offsetParent !== null &&
			  document.getElementById('presence-note').textContent === 'unknown while offline'`, 10*time.Second)
		}
		// A retry at least 2.5 s away: the number shown is the real time
		// left, and it counts down.
		alice.waitJS("a retry a few seconds away", `window.chatApp.client.getState().status === 'waiting' &&
		  window.chatApp.client.getState().retryAt - Date.now() > 2500`, 40*time.Second)
		var at struct {
			Text    string
			RetryAt int64
			Left    float64
		}
		alice.mustEval(`(function () { var s = window.chatApp.client.getState();
		  return {text: document.getElementById('conn-text').textContent, retryAt: s.retryAt, left: (s.retryAt - Date.now()) / 1000}; })()`, &at)
		m := regexp.MustCompile(`^Offline, retrying in (\d+) s$`).FindStringSubmatch(at.Text)
		if m == nil {
			t.Fatalf("alice: the indicator reads %q, want \"Offline, retrying in N s\"", at.Text)
		}
		n, _ := strconv.Atoi(m[1])
		if float64(n) < at.Left || float64(n) > at.Left+1.1 {
			t.Fatalf("alice: shows %d s, but the retry is %.2f s away", n, at.Left)
		}
		alice.waitJS("the countdown to tick", `window.chatApp.client.getState().retryAt === `+strconv.FormatInt(at.RetryAt, 10)+` &&
		  document.getElementById('conn-text').textContent === 'Offline, retrying in `+strconv.Itoa(n-1)+` s'`, 1500*time.Millisecond)

		srv.restart()
		for _, tb := range []*tab{alice, bob} {
			tb.waitConnected("")
			tb.waitJS("presence known again, with both users", `document.getElementById('presence-note').hidden &&
			  !/\bunknown\b/.test(document.getElementById('presence-box').className) &&
			  document.querySelectorAll('#presence li[data-user]').length === 2`, 15*time.Second)
		}
		bob.waitConnText("Connected (compatibility mode)", 5*time.Second)
	})

	t.Run("phone width", func(t *testing.T) {
		alice := alice.with(t)
		alice.do(chromedp.EmulateViewport(375, 740, chromedp.EmulateScale(2), chromedp.EmulateMobile))
		alice.waitJS("the phone layout", `document.getElementById('side').getBoundingClientRect().right <= 0`, 5*time.Second)
		var fit struct {
			Overflow bool
			Conn     bool
			Link     bool
			Sep      bool
		}
		alice.mustEval(`(function () {
		  var w = window.innerWidth;
		  function inside(n) { if (!n) { return false; } var r = n.getBoundingClientRect(); return r.width > 0 && r.left >= 0 && r.right <= w; }
		  document.querySelector('#messages a').scrollIntoView();
		  return {overflow: document.documentElement.scrollWidth > w, conn: inside(document.getElementById('conn')),
		    link: inside(document.querySelector('#messages a')), sep: inside(document.querySelector('#messages li.day-sep'))};
		})()`, &fit)
		if fit.Overflow || !fit.Conn || !fit.Link || !fit.Sep {
			t.Errorf("alice at phone width: %+v, want no overflow, and the indicator, a link and a separator in view", fit)
		}
	})

	for _, tb := range tabs {
		tb.checkCSP()
	}
}
