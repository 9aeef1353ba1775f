package browsertest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// quickOps makes the ops page poll every 500 ms instead of every 2 s, so
// the test need not wait for the production interval.
const quickOps = `window.chatdOpsOptions = {intervalMs: 500};`

// adminStatus is the part of GET /v1/admin/status the tests read.
type adminStatus struct {
	Level       int            `json:"level"`
	Mode        string         `json:"mode"`
	Until       *time.Time     `json:"until"`
	Connections map[string]int `json:"connections"`
	History     []struct {
		From int    `json:"from"`
		To   int    `json:"to"`
		Mode string `json:"mode"`
		By   string `json:"by"`
	} `json:"history"`
}

type flagValue struct {
	Name    string `json:"name"`
	Enabled bool   `json:"enabled"`
	Rollout int    `json:"rollout"`
}

// adminFlags is GET /v1/admin/flags.
type adminFlags struct {
	Flags []flagValue `json:"flags"`
	Audit []struct {
		Actor string    `json:"actor"`
		Name  string    `json:"name"`
		Old   flagValue `json:"old"`
		New   flagValue `json:"new"`
	} `json:"audit"`
}

// opsLogin signs in on the ops page by name, as a dev admin.
func (tb *tab) opsLogin(name string) {
	tb.t.Helper()
	tb.waitJS("the ops sign-in form", `!document.getElementById('login').hidden`, 10*time.Second)
	tb.do(
		chromedp.SetValue(chromedp.ID("login-name"), name),
		chromedp.Click(chromedp.ID("login-go")),
	)
	tb.waitJS("the ops dashboard", `!document.getElementById('ops').hidden`, 10*time.Second)
}

// setInput sets a form field as typing would: the value, then an input
// event, so the page sees the edit.
func (tb *tab) setInput(selector, value string) {
	tb.t.Helper()
	tb.mustEval(`(function () { var n = document.querySelector(`+jsString(selector)+`);
	  n.value = `+jsString(value)+`; n.dispatchEvent(new Event('input', {bubbles: true})); return true; })()`, nil)
}

// chartPixelsJS counts the pixels of the canvas id drawn in the colour
// (r, g, b), give or take anti-aliasing, above the bottom `skip` CSS pixels
// (where a line at zero lies).
func chartPixelsJS(id string, r, g, b, skip int) string {
	return fmt.Sprintf(`(function () {
	  var c = document.getElementById(%q);
	  var ratio = window.devicePixelRatio || 1;
	  var rows = Math.max(0, c.height - Math.round(%d * ratio));
	  if (!rows) { return 0; }
	  var d = c.getContext('2d').getImageData(0, 0, c.width, rows).data;
	  var n = 0;
	  for (var i = 0; i < d.length; i += 4) {
	    if (d[i + 3] > 160 && Math.abs(d[i] - %d) < 40 && Math.abs(d[i + 1] - %d) < 40 && Math.abs(d[i + 2] - %d) < 40) { n++; }
	  }
	  return n;
	})()`, id, skip, r, g, b)
}

// TestOpsPage: a token without admin rights is refused; an admin signs
// in on the ops page and sees level 0 and the flags; a chat page opened elsewhere shows up on the connections chart;
// pinning level 2 for 30 minutes through the page's controls pins it on
// the server; a flag's rollout set to 50 on the page is what the admin API
// reports, and the audit names the admin.
func TestOpsPage(t *testing.T) {
	srv := startServer(t)
	ops := newUser(t).open("ops", srv.URL()+"/ops.html", tabOptions{preScript: quickOps})

	// A token without admin rights gets a clear refusal, not a dashboard.
	ops.waitJS("the ops sign-in form", `!document.getElementById('login').hidden`, 10*time.Second)
	ops.do(
		chromedp.SetValue(chromedp.ID("login-token"), srv.login(t, "mallory").token),
		chromedp.Click(chromedp.ID("token-go")),
	)
	ops.waitJS("the refusal", `/no admin rights/.test(document.getElementById('login-error').textContent) &&
	  document.getElementById('ops').hidden`, 10*time.Second)

	ops.opsLogin("ops")
	ops.waitJS("level 0 in auto mode", `document.getElementById('level').getAttribute('data-level') === '0' &&
	  document.getElementById('level').getAttribute('data-mode') === 'auto'`, 10*time.Second)
	ops.waitJS("the contract's flags", `['transport.websocket', 'transport.sse', 'read_receipts', 'typing', 'presence'].every(function (f) {
	  return !!document.querySelector('#flags li[data-flag="' + f + '"][data-enabled="true"][data-rollout="100"]'); })`, 5*time.Second)
	ops.waitJS("the breakers", `document.querySelectorAll('#breakers li[data-breaker]').length >= 1`, 5*time.Second)
	ops.waitJS("the node", `/embedded/.test(document.getElementById('nodes').textContent)`, 5*time.Second)

	// Someone chats in another browser: the page counts the WebSocket and
	// draws it above the zero line of the connections chart.
	carol := newUser(t).open("carol", srv.URL(), tabOptions{})
	carol.login("carol")
	carol.waitConnected("websocket")
	ops.waitJS("a websocket connection on the page", `+document.getElementById('conn-websocket').textContent >= 1`, 10*time.Second)
	ops.waitJS("the websocket line on the chart", chartPixelsJS("chart-conn", 0x3b, 0x63, 0xd9, 30)+` > 10`, 5*time.Second)
	ops.waitJS("a latency chart", `+document.getElementById('chart-latency').getAttribute('data-points') > 0`, 5*time.Second)

	// Pin level 2 for 30 minutes with the page's controls.
	ops.do(
		chromedp.Click(chromedp.ID("pin-2")),
		chromedp.SetValue(chromedp.ID("pin-for"), "30m"),
		chromedp.Click(chromedp.ID("pin-go")),
	)
	ops.waitJS("level 2, manual", `document.getElementById('level').getAttribute('data-level') === '2' &&
	  document.getElementById('level').getAttribute('data-mode') === 'manual'`, 10*time.Second)
	ops.waitJS("the pin's expiry", `/pinned until .*\(\d+ min left\)/.test(document.getElementById('until').textContent)`, 5*time.Second)
	ops.waitJS("the change in the level history", `/0\s*\u2192\s*2.*manual.*admin:ops/.test(document.querySelector('#history tr').textContent)`, 5*time.Second)
	checker := srv.loginAdmin(t, "checker")
	var st adminStatus
	checker.do("GET", "/v1/admin/status", nil, &st)
	if st.Level != 2 || st.Mode != "manual" {
		t.Errorf("admin status: level %d %s, want 2 manual", st.Level, st.Mode)
	}
	if st.Until == nil {
		t.Error("admin status: a pin for 30m has no expiry")
	} else if left := time.Until(*st.Until); left < 28*time.Minute || left > 31*time.Minute {
		t.Errorf("admin status: the pin expires in %v, want about 30m", left)
	}
	if n := len(st.History); n == 0 || st.History[n-1].By != "admin:ops" || st.History[n-1].To != 2 {
		t.Errorf("admin status: history %+v, want the last change to 2 by admin:ops", st.History)
	}

	// Roll typing out to half of the users with the page's controls.
	ops.setInput(`#flags li[data-flag="typing"] .flag-rollout`, "50")
	ops.waitJS("the slider to follow", `document.querySelector('#flags li[data-flag="typing"] .flag-range').value === '50'`, time.Second)
	ops.do(chromedp.Click(chromedp.CSS(`#flags li[data-flag="typing"] .flag-apply`)))
	ops.waitJS("typing at 50%", `document.querySelector('#flags li[data-flag="typing"]').getAttribute('data-rollout') === '50' &&
	  /on\s\u00b7\s50%/.test(document.querySelector('#flags li[data-flag="typing"] .flag-now').textContent)`, 10*time.Second)
	ops.waitJS("the change in the audit", `/typing.*100%.*50%.*admin:ops/.test(document.querySelector('#audit tr').textContent)`, 5*time.Second)
	var fl adminFlags
	checker.do("GET", "/v1/admin/flags", nil, &fl)
	for _, f := range fl.Flags {
		if f.Name == "typing" && (!f.Enabled || f.Rollout != 50) {
			t.Errorf("admin flags: typing is %+v, want enabled at 50", f)
		}
	}
	if n := len(fl.Audit); n == 0 {
		t.Error("admin flags: no audit entry")
	} else if a := fl.Audit[n-1]; a.Name != "typing" || a.Actor != "admin:ops" || a.Old.Rollout != 100 || a.New.Rollout != 50 {
		t.Errorf("admin flags: last audit entry %+v, want typing 100 -> 50 by admin:ops", a)
	}

	// Back to auto.
	ops.do(chromedp.Click(chromedp.ID("auto-go")))
	ops.waitJS("auto mode", `document.getElementById('level').getAttribute('data-mode') === 'auto'`, 10*time.Second)
	checker.do("GET", "/v1/admin/status", nil, &st)
	if st.Mode != "auto" {
		t.Errorf("admin status: mode %s after the page set auto", st.Mode)
	}

	// At phone width nothing spills sideways, and the controls are on
	// screen.
	ops.do(chromedp.EmulateViewport(375, 740, chromedp.EmulateMobile))
	ops.waitJS("the phone layout", `document.documentElement.scrollWidth <= window.innerWidth &&
	  ['pin-go', 'auto-go', 'pin-3', 'chart-conn'].every(function (id) {
	    var r = document.getElementById(id).getBoundingClientRect(); return r.width > 0 && r.left >= 0 && r.right <= window.innerWidth; }) &&
	  Array.prototype.every.call(document.querySelectorAll('#flags .flag-apply, #flags .flag-rollout'), function (n) {
	    var r = n.getBoundingClientRect(); return r.width > 0 && r.right <= window.innerWidth; })`, 5*time.Second)
	ops.checkCSP()
	carol.checkCSP()
}

// TestOpsScreenshot writes docs/ops.png: the ops page after half a minute
// of chat on every tier, with a level pinned and a flag being rolled out.
// It runs only with CHAT_SCREENSHOT=1, so `make test` leaves the tree
// alone. A phone-width shot goes to the temp directory, for a look.
func TestOpsScreenshot(t *testing.T) {
	if os.Getenv("CHAT_SCREENSHOT") != "1" {
		t.Skip("set CHAT_SCREENSHOT=1 to write docs/ops.png")
	}
	srv := startServer(t)
	admin := srv.loginAdmin(t, "ops")
	ops := newUser(t).open("ops", srv.URL()+"/ops.html", tabOptions{preScript: `window.chatdOpsOptions = {intervalMs: 1000};`})
	ops.opsLogin("ops")

	// Chatters on each tier: WebSocket, SSE (no WebSocket), poll (neither).
	chatters := []*tab{
		newUser(t).open("alice", srv.URL(), tabOptions{}),
		newUser(t).open("bob", srv.URL(), tabOptions{}),
		newUser(t).open("carol", srv.URL(), tabOptions{preScript: `delete window.WebSocket;`}),
		newUser(t).open("dave", srv.URL(), tabOptions{preScript: legacyScript}),
	}
	for i, name := range []string{"alice", "bob", "carol", "dave"} {
		chatters[i].login(name)
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	erin := srv.login(t, "erin")
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(150 * time.Millisecond):
			}
			body, _ := json.Marshal(map[string]string{"room": "general", "id": fmt.Sprintf("e%d", i), "text": "load"})
			req, _ := http.NewRequest("POST", srv.URL()+"/v1/send", bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+erin.token)
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		}
	}()
	defer func() { close(stop); <-done }()

	time.Sleep(12 * time.Second) // the charts need a history to show
	admin.do("PUT", "/v1/admin/flags/typing", map[string]any{"rollout": 10}, nil)
	time.Sleep(4 * time.Second)
	admin.do("PUT", "/v1/admin/flags/typing", map[string]any{"rollout": 50}, nil)
	admin.do("POST", "/v1/admin/rollouts", map[string]any{"flag": "read_receipts", "steps": []int{10, 50, 100}, "hold": "24h"}, nil)
	ops.do(
		chromedp.Click(chromedp.ID("pin-1")),
		chromedp.SetValue(chromedp.ID("pin-for"), "30m"),
		chromedp.Click(chromedp.ID("pin-go")),
	)
	ops.waitJS("level 1", `document.getElementById('level').getAttribute('data-level') === '1'`, 10*time.Second)
	time.Sleep(8 * time.Second)
	ops.setInput(`#flags li[data-flag="presence"] .flag-rollout`, "75") // an edit not yet applied

	ops.do(chromedp.EmulateViewport(1280, 900))
	time.Sleep(1500 * time.Millisecond) // one more poll at this size
	buf, err := chromedp.Run(ops.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join("..", "..", "docs", "ops.png"), buf, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote docs/ops.png (%d bytes)", len(buf))

	ops.do(chromedp.EmulateViewport(375, 740, chromedp.EmulateMobile))
	time.Sleep(1500 * time.Millisecond)
	var height int
	ops.mustEval(`document.documentElement.scrollHeight`, &height)
	for i, y := 0, 0; y < height; i, y = i+1, y+700 {
		ops.mustEval(fmt.Sprintf(`window.scrollTo(0, %d)`, y), nil)
		if buf, err = chromedp.Run(ops.ctx, chromedp.CaptureScreenshot()); err != nil {
			t.Fatal(err)
		}
		phone := filepath.Join(os.TempDir(), fmt.Sprintf("chatd-ops-phone-%d.png", i))
		if err := os.WriteFile(phone, buf, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", phone)
	}
	ops.checkCSP()
}
