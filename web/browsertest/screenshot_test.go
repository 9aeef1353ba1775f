package browsertest

import (
	"bytes"
	"encoding/json"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"net/http"
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
	// An image in the room, and a DM waiting for alice.
	chart := carol.upload("general", "latency.png", chartPNG())
	body, _ := json.Marshal(map[string]any{"room": "general", "id": "c3", "text": "p99 after the fix, per tier", "files": []any{chart["id"]}})
	req, _ := http.NewRequest("POST", srv.URL()+"/v1/send", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+carol.token)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("sending the chart: %v %v", err, resp)
	} else {
		resp.Body.Close()
	}
	alice.waitJS("the chart's thumbnail", `(function () { var img = document.querySelector('#messages .file-img img');
	  return !!img && img.complete && img.naturalWidth > 0; })()`, 10*time.Second)
	dana := srv.login(t, "Dana")
	dana.send("dm:alice:dana", "d1", "Got a minute after standup?")
	dana.send("dm:alice:dana", "d2", "About the rollout plan")
	alice.waitJS("the DM's badge", `(function () { var li = document.querySelector('#dms li[data-room="dm:alice:dana"]');
	  return !!li && li.getAttribute('data-unread') === '2'; })()`, 10*time.Second)

	// Bob reads, so alice sees a receipt; bob types, so she sees that too.
	alice.waitJS("bob's receipt", `/seen by Bob/.test(document.getElementById('messages').textContent)`, 10*time.Second)
	// bob's sends above typed too (the composer's input events), so the
	// client's and the server's typing throttles may hold this one back:
	// type again until alice sees it (a screenshot, not a test of speed).
	bob.do(chromedp.SendKeys(chromedp.ID("input"), "on my way"))
	for i := 0; i < 20 && alice.str(`document.getElementById('typing').textContent`) == ""; i++ {
		bob.mustEval(`window.chatApp.client._typingAt = {}, window.chatApp.client.typing('general'), true`, nil)
		time.Sleep(500 * time.Millisecond)
	}
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
	alice.do(chromedp.EmulateViewport(1000, 820))
	alice.waitJS("the layout", `document.getElementById('scroller').clientHeight > 200`, 5*time.Second)
	shot(alice, "screenshot.png")
	alice.do(chromedp.EmulateViewport(375, 740, chromedp.EmulateScale(2), chromedp.EmulateMobile))
	alice.waitJS("the phone layout", `document.getElementById('side').getBoundingClientRect().right <= 0`, 5*time.Second)
	if !strings.Contains(alice.diagnose(), "websocket") {
		t.Log("note: not on websocket")
	}
	shot(alice, "screenshot-phone.png")
}

// chartPNG draws a small bar chart: three tiers' p99, before and after.
func chartPNG() []byte {
	img := image.NewRGBA(image.Rect(0, 0, 480, 260))
	draw.Draw(img, img.Bounds(), image.NewUniform(color.RGBA{250, 250, 252, 255}), image.Point{}, draw.Src)
	bars := []struct {
		h int
		c color.RGBA
	}{{200, color.RGBA{200, 205, 215, 255}}, {70, color.RGBA{59, 99, 217, 255}}, {180, color.RGBA{200, 205, 215, 255}},
		{90, color.RGBA{59, 99, 217, 255}}, {220, color.RGBA{200, 205, 215, 255}}, {120, color.RGBA{59, 99, 217, 255}}}
	for i, b := range bars {
		x := 40 + i*70 + (i/2)*10
		draw.Draw(img, image.Rect(x, 240-b.h, x+50, 240), image.NewUniform(b.c), image.Point{}, draw.Src)
	}
	draw.Draw(img, image.Rect(20, 240, 460, 242), image.NewUniform(color.RGBA{120, 125, 135, 255}), image.Point{}, draw.Src)
	var out bytes.Buffer
	if err := png.Encode(&out, img); err != nil {
		panic(err)
	}
	return out.Bytes()
}
