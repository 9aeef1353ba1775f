package browsertest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

const chromiumPath = "/usr/bin/chromium"

// browserCtx is the one browser every test shares; nil when there is no
// Chromium, and then the tests skip.
var browserCtx context.Context

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if _, err := os.Stat(chromiumPath); err != nil {
		fmt.Fprintf(os.Stderr, "browsertest: %s not found; the browser tests will skip (make deps installs it)\n", chromiumPath)
		return m.Run()
	}
	tmp, err := os.MkdirTemp("", "chatd-browsertest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	chatdBin, err = buildChatd(tmp)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	profile, err := os.MkdirTemp(tmp, "profile-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.NoSandbox,
		chromedp.Headless,
		chromedp.DisableGPU,
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1100, 760),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-quic", true),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(allocCtx)
	defer cancel()
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		fmt.Fprintf(os.Stderr, "browsertest: cannot start %s: %v\n", chromiumPath, err)
		return 1
	}
	browserCtx = ctx
	return m.Run()
}

// user is one simulated person: a browser context of their own, so
// cookies and localStorage are theirs alone. Their tabs share it.
type user struct {
	t    *testing.T
	ctx  context.Context
	used bool // the context's own first tab is taken
}

func newUser(t *testing.T) *user {
	t.Helper()
	if browserCtx == nil {
		t.Skipf("no browser: %s is missing (make deps installs it)", chromiumPath)
	}
	ctx, cancel := chromedp.NewContext(browserCtx, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("new browser context: %v", err)
	}
	return &user{t: t, ctx: ctx}
}

// tab is one page.
type tab struct {
	t    *testing.T
	ctx  context.Context
	name string
}

// tabOptions change how a tab loads.
type tabOptions struct {
	preScript string // runs before the page's own scripts
	bypassCSP bool
}

// cspProbe records Content-Security-Policy violations, so every test can
// check that the page works under its strict policy.
const cspProbe = `window.__csp = [];
document.addEventListener('securitypolicyviolation', function (e) {
  window.__csp.push(e.violatedDirective + ' ' + e.blockedURI);
});`

// open opens a tab of u at url. The first tab is the one the browser
// context came with; later ones are new targets in the same context.
func (u *user) open(name, url string, o tabOptions) *tab {
	t := u.t
	t.Helper()
	ctx := u.ctx
	if u.used {
		var cancel context.CancelFunc
		ctx, cancel = chromedp.NewContext(u.ctx)
		t.Cleanup(cancel)
		if err := chromedp.Do(ctx); err != nil {
			t.Fatalf("%s: new tab: %v", name, err)
		}
	}
	u.used = true
	tb := &tab{t: t, ctx: ctx, name: name}
	for _, src := range []string{cspProbe, o.preScript} {
		if src == "" {
			continue
		}
		if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: src}); err != nil {
			t.Fatalf("%s: add script: %v", name, err)
		}
	}
	if o.bypassCSP {
		if _, err := chromedp.Call(ctx, page.SetBypassCSP, page.SetBypassCSPParams{Enabled: true}); err != nil {
			t.Fatalf("%s: bypass CSP: %v", name, err)
		}
	}
	tb.do(chromedp.Navigate(url))
	return tb
}

func (tb *tab) do(actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		tb.t.Fatalf("%s: %v\n%s", tb.name, err, tb.diagnose())
	}
}

// eval runs expr in the page and decodes its value into out.
func (tb *tab) eval(expr string, out any) error {
	ctx, cancel := context.WithTimeout(tb.ctx, 10*time.Second)
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](expr))
	if err != nil {
		return err
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(raw, out)
}

func (tb *tab) mustEval(expr string, out any) {
	tb.t.Helper()
	if err := tb.eval(expr, out); err != nil {
		tb.t.Fatalf("%s: eval %q: %v", tb.name, expr, err)
	}
}

// waitJS polls expr (through the DevTools protocol, which the page's CSP
// does not restrict) until it is true, for at most timeout.
func (tb *tab) waitJS(what, expr string, timeout time.Duration) {
	tb.t.Helper()
	deadline := time.Now().Add(timeout)
	var lastErr error
	for {
		var ok bool
		lastErr = tb.eval("!!("+expr+")", &ok)
		if lastErr == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			break
		}
		select {
		case <-tb.ctx.Done():
			tb.t.Fatalf("%s: waiting for %s: %v", tb.name, what, tb.ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	tb.t.Fatalf("%s: timed out after %v waiting for %s (last error: %v)\n%s", tb.name, timeout, what, lastErr, tb.diagnose())
}

// diagnose describes the page for a failure message.
func (tb *tab) diagnose() string {
	var state any
	err := tb.eval(`({
	  conn: (document.getElementById('conn') || {}).title,
	  connText: (document.getElementById('conn-text') || {}).textContent,
	  client: window.chatApp && window.chatApp.client ? window.chatApp.client.getState() : null,
	  active: window.chatApp ? window.chatApp.active : null,
	  rooms: Array.prototype.map.call(document.querySelectorAll('#rooms li, #dms li'), function (li) {
	    return li.getAttribute('data-room') + '=' + li.getAttribute('data-unread'); }),
	  messages: Array.prototype.map.call(document.querySelectorAll('#messages li.msg'), function (li) {
	    return li.getAttribute('data-seq') + ' ' + li.getAttribute('data-state') + ' ' + li.querySelector('.text').textContent; }),
	  csp: window.__csp
	})`, &state)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return "(page gone)"
		}
		return "(no page state: " + err.Error() + ")"
	}
	b, _ := json.MarshalIndent(state, "", "  ")
	return "page state of " + tb.name + ":\n" + string(b)
}

// login signs in through the form.
func (tb *tab) login(name string) {
	tb.t.Helper()
	tb.waitJS("the sign-in form", `!document.getElementById('login').hidden`, 10*time.Second)
	tb.do(
		chromedp.SetValue(chromedp.ID("login-name"), name),
		chromedp.Click(chromedp.ID("login-go")),
	)
	tb.waitConnected("")
}

// waitConnected waits until the page is connected, over tier when given.
func (tb *tab) waitConnected(tier string) {
	tb.t.Helper()
	expr := `document.getElementById('conn').getAttribute('data-connected') === 'true'`
	what := "a connection"
	if tier != "" {
		expr += ` && document.getElementById('conn').getAttribute('data-tier') === '` + tier + `'`
		what = "a connection over " + tier
	}
	tb.waitJS(what, expr, 20*time.Second)
}

// send types text into the composer and sends it.
func (tb *tab) send(text string) {
	tb.t.Helper()
	tb.do(
		chromedp.SetValue(chromedp.ID("input"), text),
		chromedp.Click(chromedp.ID("send")),
	)
}

// domMessage is one message node of the list.
type domMessage struct {
	ID    string `json:"id"`
	Seq   uint64 `json:"seq"`
	State string `json:"state"`
	Text  string `json:"text"`
	Class string `json:"class"`
}

const messagesJS = `Array.prototype.map.call(document.querySelectorAll('#messages li.msg'), function (li) {
  return {id: li.getAttribute('data-id'), seq: +(li.getAttribute('data-seq') || 0),
    state: li.getAttribute('data-state'), text: li.querySelector('.text').textContent, class: li.className};
})`

func (tb *tab) messages() []domMessage {
	tb.t.Helper()
	var out []domMessage
	tb.mustEval(messagesJS, &out)
	return out
}

// jsString quotes s for a JavaScript expression. (JSON is valid
// JavaScript; Go's escapes of <, > and & are too.)
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// waitText waits until a sent message with text is in the list.
func (tb *tab) waitText(text string) {
	tb.t.Helper()
	tb.waitJS("message "+jsString(text), `Array.prototype.some.call(document.querySelectorAll('#messages li.msg[data-state="sent"] .text'),
	  function (n) { return n.textContent === `+jsString(text)+`; })`, 20*time.Second)
}

// waitTexts waits until the sent messages are exactly texts, in order.
func (tb *tab) waitTexts(texts []string) {
	tb.t.Helper()
	want, _ := json.Marshal(texts)
	tb.waitJS("the messages "+string(want), `JSON.stringify(Array.prototype.map.call(
	  document.querySelectorAll('#messages li.msg[data-state="sent"] .text'), function (n) { return n.textContent; })) === JSON.stringify(`+string(want)+`)`, 20*time.Second)
}

// checkCSP fails the test if the page broke its own CSP.
func (tb *tab) checkCSP() {
	tb.t.Helper()
	var v []string
	tb.mustEval(`window.__csp || []`, &v)
	if len(v) > 0 {
		tb.t.Errorf("%s: CSP violations: %s", tb.name, strings.Join(v, "; "))
	}
}

// sameAsServer checks that the page lists exactly the server's messages
// of its active room: the same ids, in the same order, each once.
func (tb *tab) sameAsServer(a *api, room string) {
	tb.t.Helper()
	hist := a.history(room)
	want := make([]string, len(hist))
	for i, m := range hist {
		want[i] = fmt.Sprintf("%d:%s", m.Seq, m.ID)
	}
	wantJSON, _ := json.Marshal(want)
	tb.waitJS("the server's history of "+room, `JSON.stringify(Array.prototype.map.call(document.querySelectorAll('#messages li.msg'),
	  function (li) { return li.getAttribute('data-seq') + ':' + li.getAttribute('data-id'); })) === JSON.stringify(`+string(wantJSON)+`)`, 20*time.Second)
	seen := map[string]bool{}
	for _, m := range tb.messages() {
		if seen[m.ID] {
			tb.t.Errorf("%s: message %s shown twice", tb.name, m.ID)
		}
		seen[m.ID] = true
		if m.State != "sent" {
			tb.t.Errorf("%s: message %s is %s", tb.name, m.ID, m.State)
		}
	}
}
