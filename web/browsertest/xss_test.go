package browsertest

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// xssPayloads are sent as message text. None may run, and each must show
// verbatim. (The server strips control characters, so none are here.)
var xssPayloads = []string{
	`<img src=x onerror=alert(1)>`,
	`<script>alert(1)</script>`,
	`"><svg onload=alert(1)>`,
	`javascript:alert(1)`,
	`<iframe srcdoc="<script>alert(1)</script>"></iframe>`,
	`<a href="javascript:alert(1)">click me</a>`,
	`<img src=x onerror="window.__pwned=1">`,
	`</li></ol><script>alert(1)</script><ol><li>`,
	`<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>`,
	`<style>body{display:none}</style>`,
	`' onmouseover='alert(1)' x='`,
	`{{constructor.constructor('alert(1)')()}}`,
	`&lt;b&gt;entities stay text&lt;/b&gt; &amp; &#60;script&#62;`,
	"\u202e<b>right-to-left override</b>\u202c",
	"\uff1cscript\uff1ealert(1)\uff1c/script\uff1e",
	"zero\u200bwidth <img\u200bsrc=x onerror=alert(1)>",
	"multi\nline <b>text</b>\n\t<i>tabbed</i>",
	"emoji \U0001F600 <img src=x onerror=alert(1)> \U0001F4A5",
}

// TestXSSPayloadsInert sends a corpus of XSS payloads through the chat.
// The receiving page runs with its CSP bypassed, so the test checks the
// rendering itself and not only the CSP backstop: no dialog opens, no
// element is injected into the list, and every payload shows verbatim.
func TestXSSPayloadsInert(t *testing.T) {
	srv := startServer(t)
	var mu sync.Mutex
	var dialogs []string
	watch := func(tb *tab) {
		events := chromedp.Events(tb.ctx, page.JavascriptDialogOpening)
		go func() {
			for ev, err := range events {
				if err != nil {
					return
				}
				mu.Lock()
				dialogs = append(dialogs, tb.name+": "+ev.Message)
				mu.Unlock()
				// Close it, so the page does not hang on it.
				ctx, cancel := context.WithTimeout(tb.ctx, 5*time.Second)
				_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
				cancel()
			}
		}()
	}
	alice := newUser(t).open("alice", srv.URL(), tabOptions{})
	bob := newUser(t).open("bob", srv.URL(), tabOptions{bypassCSP: true})
	watch(alice)
	watch(bob)
	alice.login("alice")
	bob.login("bob")

	for _, p := range xssPayloads {
		alice.send(p)
	}
	check := srv.login(t, "checker")
	for _, tb := range []*tab{alice, bob} {
		tb.waitTexts(xssPayloads)
		tb.sameAsServer(check, "general")
	}
	// The room list renders names as text too.
	room := `<img/src=x/onerror=alert(1)>`
	bob.do(
		chromedp.SetValue(chromedp.ID("join-name"), room),
		chromedp.Click(chromedp.CSS("#join-form button")),
	)
	bob.waitJS("the odd room to open", `window.chatApp.active === `+jsString(room), 5*time.Second)
	bob.send(`<svg/onload=alert(2)>`)
	bob.waitText(`<svg/onload=alert(2)>`)

	for _, tb := range []*tab{alice, bob} {
		var injected []string
		tb.mustEval(`Array.prototype.map.call(document.querySelectorAll(
		  '#messages img, #messages script, #messages svg, #messages iframe, #messages a, #messages style, #messages math, #messages b, #messages i, #rooms img, #room-title *'),
		  function (n) { return n.outerHTML; })`, &injected)
		if len(injected) > 0 {
			t.Errorf("%s: injected elements in the page: %q", tb.name, injected)
		}
		var pwned bool
		tb.mustEval(`window.__pwned === 1`, &pwned)
		if pwned {
			t.Errorf("%s: a payload ran script", tb.name)
		}
		var title string
		tb.mustEval(`document.getElementById('room-title').textContent`, &title)
		if tb == bob && title != "#"+room {
			t.Errorf("bob: room title = %q, want %q", title, "#"+room)
		}
	}
	alice.checkCSP()
	mu.Lock()
	defer mu.Unlock()
	if len(dialogs) > 0 {
		t.Errorf("dialogs opened: %q", dialogs)
	}
}

// TestPageHeaders: the chat page and its scripts come with the strict CSP.
func TestPageHeaders(t *testing.T) {
	srv := startServer(t)
	for _, path := range []string{"/", "/chat-client.js", "/chat-app.js", "/status.html"} {
		resp, err := http.Get(srv.URL() + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: %s", path, resp.Status)
		}
		csp := resp.Header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") {
			t.Errorf("%s: CSP = %q", path, csp)
		}
	}
}
