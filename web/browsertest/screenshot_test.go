package browsertest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestScreenshot writes docs/screenshot.png (and docs/screenshot-phone.png)
// of a short conversation, for the README. It runs only with
// CHAT_SCREENSHOT=1, so `make test` leaves the tree alone.
func TestScreenshot(t *testing.T) {
	if os.Getenv("CHAT_SCREENSHOT") != "1" {
		t.Skip("set CHAT_SCREENSHOT=1 to write docs/screenshot.png")
	}
	srv := startServer(t)
	alice := newUser(t).open("alice", srv.URL(), tabOptions{})
	bob := newUser(t).open("bob", srv.URL(), tabOptions{})
	carol := srv.login(t, "Carol")
	alice.login("Alice")
	bob.login("Bob")

	carol.send("general", "c1", "Morning all! Standup in 10?")
	alice.send("Works for me. I'll share the release notes.")
	bob.waitText("Works for me. I'll share the release notes.")
	bob.send("Same here. The SSE fallback landed last night.")
	alice.waitText("Same here. The SSE fallback landed last night.")
	carol.send("general", "c2", "Nice. Does it resume without duplicates?")
	alice.send("Yes: every room resumes from its last seq, on any tier.\nKilled the server twice, nothing lost.")
	bob.waitText("Yes: every room resumes from its last seq, on any tier.\nKilled the server twice, nothing lost.")
	alice.do(
		chromedp.SetValue(chromedp.ID("join-name"), "release"),
		chromedp.Click(chromedp.CSS("#join-form button")),
	)
	alice.do(chromedp.Click(chromedp.CSS(`#rooms li[data-room="general"] .room-btn`)))
	carol.send("release", "r1", "v1.4 notes are up")
	alice.waitJS("the unread badge", `document.querySelector('#rooms li[data-room="release"]').getAttribute('data-unread') === '1'`, 10*time.Second)
	// Bob reads, so alice sees a receipt; bob types, so she sees that too.
	alice.waitJS("bob's receipt", `/seen by Bob/.test(document.getElementById('messages').textContent)`, 10*time.Second)
	bob.do(chromedp.SendKeys(chromedp.ID("input"), "on my way"))
	alice.waitJS("the typing line", `/Bob is typing/.test(document.getElementById('typing').textContent)`, 10*time.Second)

	dir := filepath.Join("..", "..", "docs")
	shot := func(tb *tab, file string) {
		buf, err := chromedp.Run(tb.ctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, file), buf, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote docs/%s (%d bytes)", file, len(buf))
	}
	alice.do(chromedp.EmulateViewport(1000, 620))
	alice.waitJS("the layout", `document.getElementById('scroller').clientHeight > 200`, 5*time.Second)
	shot(alice, "screenshot.png")
	alice.do(chromedp.EmulateViewport(375, 740, chromedp.EmulateScale(2), chromedp.EmulateMobile))
	alice.waitJS("the phone layout", `document.getElementById('side').getBoundingClientRect().right <= 0`, 5*time.Second)
	if !strings.Contains(alice.diagnose(), "websocket") {
		t.Log("note: not on websocket")
	}
	shot(alice, "screenshot-phone.png")
}
