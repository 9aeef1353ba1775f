package browsertest

import (
	"bytes"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/chatd/chatd/core/files/filestest"
)

// dmBudget is the budget for a DM to reach its recipient's list.
// The tests log the time it took and fail only at a generous deadline: a
// loaded test machine is not the product's speed.
const dmBudget = 2 * time.Second

// upload posts a file to room as a and returns the file object.
func (a *api) upload(room, name string, data []byte) map[string]any {
	a.t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	_ = mw.WriteField("room", room)
	fw, _ := mw.CreateFormFile("file", name)
	fw.Write(data)
	mw.Close()
	req, _ := http.NewRequest("POST", a.base+"/v1/files", &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+a.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	data, _ = io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated || json.Unmarshal(data, &out) != nil {
		a.t.Fatalf("upload %s: %s: %s", name, resp.Status, data)
	}
	return out
}

// get fetches path as a, without failing on the status.
func (a *api) get(path string) *http.Response {
	a.t.Helper()
	req, _ := http.NewRequest("GET", a.base+path, nil)
	req.Header.Set("Authorization", "Bearer "+a.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// TestDirectMessageFindsItsRecipient: alice writes to bob, who has typed
// nothing: his list shows the DM with an unread badge, on WebSocket and in
// legacy mode (long-polling).
func TestDirectMessageFindsItsRecipient(t *testing.T) {
	srv := startServer(t)
	alice := srv.login(t, "alice")
	for _, c := range []struct {
		name, user, tier string
		opts             tabOptions
	}{
		{"websocket", "bob", "websocket", tabOptions{}},
		{"legacy", "carol", "poll", tabOptions{preScript: legacyScript}},
	} {
		t.Run(c.name, func(t *testing.T) {
			tb := newUser(t).open(c.user, srv.URL(), tabOptions{preScript: c.opts.preScript})
			tb.login(c.user)
			tb.waitConnected(c.tier)
			dm := "dm:alice:" + c.user
			alice.with(t).send(dm, "hello-"+c.user, "psst, "+c.user)
			start := time.Now()
			tb.waitJS("the DM with an unread badge", `(function () {
			  var li = document.querySelector('#dms li[data-room="`+dm+`"]');
			  return !!li && li.getAttribute('data-unread') === '1' && !li.querySelector('.badge').hidden; })()`, 15*time.Second)
			took := time.Since(start)
			t.Logf("%s: the DM reached the list in %v (budget %v)", c.name, took, dmBudget)
			if label := tb.str(`document.querySelector('#dms li[data-room="` + dm + `"] .room-name').textContent`); !strings.Contains(label, "alice") {
				t.Errorf("the DM is listed as %q, want alice named", label)
			}
			tb.do(chromedp.Click(chromedp.CSS(`#dms li[data-room="` + dm + `"] .room-btn`)))
			tb.waitText("psst, " + c.user)
			tb.checkCSP()
		})
	}
}

// TestDisplayNames: "Zoë Smith" signs in by that name; bob sees it on her
// message and in presence; she renames herself, and her new message and
// presence carry the new name while the old message keeps the old one.
func TestDisplayNames(t *testing.T) {
	srv := startServer(t)
	zoe := newUser(t).open("zoe", srv.URL(), tabOptions{})
	bob := newUser(t).open("bob", srv.URL(), tabOptions{})
	zoe.login("Zoë Smith")
	bob.login("bob")
	zoe.send("hej från Zoë")
	bob.waitText("hej från Zoë")
	whoOf := func(tb *tab, text string) string {
		return tb.str(`(function () { var out = '';
		  Array.prototype.forEach.call(document.querySelectorAll('#messages li.msg'), function (li) {
		    if (li.querySelector('.text').textContent === ` + jsString(text) + `) { out = li.querySelector('.who').textContent; } });
		  return out; })()`)
	}
	if who := whoOf(bob, "hej från Zoë"); who != "Zoë Smith" {
		t.Errorf("bob sees her message from %q, want Zoë Smith", who)
	}
	bob.waitJS("Zoë Smith in presence", `/Zoë Smith/.test(document.getElementById('presence').textContent)`, 10*time.Second)
	if me := zoe.str(`document.getElementById('me').textContent`); me != "Zoë Smith" {
		t.Errorf("her header reads %q", me)
	}

	zoe.do(chromedp.Click(chromedp.ID("me")))
	zoe.waitJS("the name form", `!document.getElementById('name-form').hidden`, 5*time.Second)
	zoe.do(chromedp.SetValue(chromedp.ID("name-input"), "Zoë S."), chromedp.Click(chromedp.CSS(`#name-form button[type="submit"]`)))
	zoe.waitJS("the new name in her header", `document.getElementById('me').textContent === 'Zoë S.'`, 10*time.Second)
	zoe.send("now as Zoë S.")
	bob.waitText("now as Zoë S.")
	if who := whoOf(bob, "now as Zoë S."); who != "Zoë S." {
		t.Errorf("bob sees her new message from %q, want Zoë S.", who)
	}
	if who := whoOf(bob, "hej från Zoë"); who != "Zoë Smith" {
		t.Errorf("her old message now shows %q; a message keeps the name it was sent with", who)
	}
	bob.waitJS("the new name in presence", `/Zoë S\./.test(document.getElementById('presence').textContent) &&
	  !/Zoë Smith/.test(document.getElementById('presence').textContent)`, 10*time.Second)

	// Anyone may take any name: mallory takes hers, and bob tells the two
	// apart by the id beside each name that is not its id.
	idOf := func(tb *tab, text string) string {
		return tb.str(`(function () { var out = '?';
		  Array.prototype.forEach.call(document.querySelectorAll('#messages li.msg'), function (li) {
		    if (li.querySelector('.text').textContent === ` + jsString(text) + `) { out = li.querySelector('.who-id').textContent; } });
		  return out; })()`)
	}
	mallory := srv.login(t, "mallory")
	mallory.do(http.MethodPut, "/v1/me", map[string]string{"name": "Zoë S."}, nil)
	mallory.send("general", "namesake-1", "it is me, Zoë")
	bob.waitText("it is me, Zoë")
	if who, id := whoOf(bob, "it is me, Zoë"), idOf(bob, "it is me, Zoë"); who != "Zoë S." || id != "@mallory" {
		t.Errorf("bob sees the namesake's message from %q %q, want Zoë S. @mallory", who, id)
	}
	if id := idOf(bob, "now as Zoë S."); id == "@mallory" || !strings.HasPrefix(id, "@") {
		t.Errorf("bob sees Zoë's own message with %q beside her name, want her id", id)
	}
	bob.send("and I am bob")
	bob.waitText("and I am bob")
	if id := idOf(bob, "and I am bob"); id != "" {
		t.Errorf("a name that is its id shows %q beside it, want nothing", id)
	}

	// A name with a bidi override is refused, on the page and by the server.
	zoe.do(chromedp.Click(chromedp.ID("me")))
	zoe.do(chromedp.SetValue(chromedp.ID("name-input"), "evil\u202egnp.exe"), chromedp.Click(chromedp.CSS(`#name-form button[type="submit"]`)))
	zoe.waitJS("the refusal", `document.getElementById('name-error').textContent !== ''`, 5*time.Second)
	for _, tb := range []*tab{zoe, bob} {
		tb.checkCSP()
	}
}

// TestFilesOnThePage: an image uploaded on the modern page shows as a
// thumbnail on another page; a file uploaded from the legacy page shows
// as a download; an SVG with a script and an HTML file are attachments
// that run nothing; a user outside a DM gets 403 on its file.
func TestFilesOnThePage(t *testing.T) {
	srv := startServer(t)
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	alice := newUser(t).open("alice", srv.URL(), tabOptions{})
	bob := newUser(t).open("bob", srv.URL(), tabOptions{})
	carol := newUser(t).open("carol", srv.URL(), tabOptions{preScript: legacyScript})
	alice.login("alice")
	bob.login("bob")
	carol.login("carol")
	carol.waitConnected("poll")

	alice.do(chromedp.SetUploadFiles(chromedp.ID("file-input"), []string{write("cat.png", filestest.PNG(640, 400, false))}, chromedp.NodeReady))
	bob.waitJS("the thumbnail", `(function () { var img = document.querySelector('#messages li.msg .file-img img');
	  return !!img && img.complete && img.naturalWidth > 0 && /^blob:/.test(img.src); })()`, 20*time.Second)
	var dims struct{ W, H int }
	bob.mustEval(`(function () { var img = document.querySelector('#messages li.msg .file-img img');
	  return {w: img.naturalWidth, h: img.naturalHeight}; })()`, &dims)
	if dims.W > 320 || dims.H > 320 || dims.W == 0 {
		t.Errorf("the thumbnail is %d×%d, want one that fits 320×320", dims.W, dims.H)
	}
	bob.do(chromedp.Click(chromedp.CSS(`#messages li.msg .file-img`)))
	bob.waitJS("the full image", `!document.getElementById('viewer').hidden && document.getElementById('viewer-img').naturalWidth === 640`, 10*time.Second)
	bob.do(chromedp.Click(chromedp.ID("viewer")))

	carol.do(chromedp.SetUploadFiles(chromedp.ID("file-input"), []string{write("notes.txt", []byte("minutes of the meeting\n"))}, chromedp.NodeReady))
	alice.waitJS("carol's file as a download", `!!document.querySelector('#messages li.msg .file-att[data-name="notes.txt"]')`, 20*time.Second)

	// Files that could run in a browser are attachments, and run nothing.
	dave := srv.login(t, "dave")
	svg := dave.upload("general", "cat.svg", []byte(`<svg xmlns="http://www.w3.org/2000/svg"><script>alert(document.domain)</script></svg>`))
	html := dave.upload("general", "page.html", []byte(`<html><body><script>alert(1)</script></body></html>`))
	for _, f := range []map[string]any{svg, html} {
		if f["thumb_url"] != nil {
			t.Errorf("%s has a thumbnail; only raster images do", f["name"])
		}
		req, _ := http.NewRequest("GET", srv.URL()+f["url"].(string), nil)
		req.Header.Set("Authorization", "Bearer "+srv.login(t, "erin").token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		h := resp.Header
		if resp.StatusCode != 200 || !strings.HasPrefix(h.Get("Content-Disposition"), "attachment") || h.Get("X-Content-Type-Options") != "nosniff" ||
			!strings.Contains(h.Get("Content-Security-Policy"), "sandbox") || strings.Contains(h.Get("Content-Type"), "html") ||
			strings.Contains(h.Get("Content-Type"), "svg") {
			t.Errorf("%s is served %d with %v; want an attachment, nosniff, a sandbox CSP, neither HTML nor SVG", f["name"], resp.StatusCode, h)
		}
		dave.send("general", "f-"+f["id"].(string), "see "+f["name"].(string))
		sendFile(t, srv, dave, "a-"+f["id"].(string), f["name"].(string), f)
	}
	// A file with no text, which the page's own upload never sends: the
	// page shows it, and goes on showing what comes after it (it threw on
	// the missing text, and every later message went unshown).
	sendFile(t, srv, dave, "only", "", dave.upload("general", "only.txt", []byte("no words")))
	alice.waitJS("a file with no text", `!!document.querySelector('#messages li.msg .file-att[data-name="only.txt"]')`, 20*time.Second)
	var dialogs atomic.Int32
	if err := chromedp.Listen(alice.ctx, func(ev any) {
		if _, ok := ev.(*page.EventJavascriptDialogOpening); ok {
			dialogs.Add(1)
		}
	}); err != nil {
		t.Fatal(err)
	}
	before := alice.str(`location.href`)
	for _, name := range []string{"cat.svg", "page.html"} {
		sel := `#messages li.msg .file-att[data-name="` + name + `"]`
		alice.waitJS(name+" as a download", `!!document.querySelector('`+sel+`')`, 20*time.Second)
		alice.do(chromedp.Click(chromedp.CSS(sel)))
	}
	alice.send("after the downloads") // a round trip through the page after the clicks
	alice.waitText("after the downloads")
	if n := dialogs.Load(); n != 0 {
		t.Errorf("%d script dialogs opened: a downloaded file ran", n)
	}
	if after := alice.str(`location.href`); after != before {
		t.Errorf("the page navigated to %s", after)
	}

	// A DM's file is for the two of them.
	aliceAPI := srv.login(t, "alice")
	secret := aliceAPI.upload("dm:alice:bob", "secret.png", filestest.PNG(20, 20, false))
	if code := srv.login(t, "mallory").get(secret["url"].(string)).StatusCode; code != http.StatusForbidden {
		t.Errorf("a third user fetching a DM's file: %d, want 403", code)
	}
	if code := srv.login(t, "bob").get(secret["url"].(string)).StatusCode; code != http.StatusOK {
		t.Errorf("bob fetching his DM's file: %d, want 200", code)
	}
	for _, tb := range []*tab{alice, bob, carol} {
		tb.checkCSP()
	}
}

// sendFile sends f to general as who, with text, under id, through the
// API.
func sendFile(t *testing.T, srv *server, who *api, id, text string, f map[string]any) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"room": "general", "id": id, "text": text, "files": []any{f["id"]}})
	req, _ := http.NewRequest("POST", srv.URL()+"/v1/send", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+who.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("sending %s: %v %v", f["name"], err, resp)
	}
	resp.Body.Close()
}

// TestEditAndDeleteOnThePage: alice edits one message and deletes
// another from her page; bob's page shows both at once, and carol's
// legacy page, cut off from the server meanwhile, shows both once it
// resumes.
func TestEditAndDeleteOnThePage(t *testing.T) {
	srv := startServer(t)
	var cut atomic.Bool
	var proxy *httptest.Server
	proxy = startProxy(t, srv, func(w http.ResponseWriter, r *http.Request, pass http.Handler) {
		if cut.Load() {
			http.Error(w, "cut", http.StatusServiceUnavailable)
			return
		}
		pass.ServeHTTP(w, r)
	}, nil)
	alice := newUser(t).open("alice", srv.URL(), tabOptions{})
	bob := newUser(t).open("bob", srv.URL(), tabOptions{})
	carol := newUser(t).open("carol", proxy.URL, tabOptions{preScript: legacyScript +
		`window.chatdClientOptions = {backoffBaseMs: 200, backoffCapMs: 600};`})
	alice.login("alice")
	bob.login("bob")
	carol.login("carol")
	carol.waitConnected("poll")
	tabs := []*tab{alice, bob, carol}

	alice.send("teh plan is ready")
	alice.send("oops, wrong room")
	for _, tb := range tabs {
		tb.waitText("oops, wrong room")
	}
	seqOf := func(text string) string {
		return alice.str(`(function () { var out = '';
		  Array.prototype.forEach.call(document.querySelectorAll('#messages li.msg.mine'), function (li) {
		    if (li.querySelector('.text').textContent === ` + jsString(text) + `) { out = li.getAttribute('data-seq'); } });
		  return out; })()`)
	}
	planSeq, oopsSeq := seqOf("teh plan is ready"), seqOf("oops, wrong room")
	if planSeq == "" || oopsSeq == "" {
		t.Fatal("alice's messages have no seq")
	}

	cut.Store(true)
	proxy.CloseClientConnections()
	carol.waitJS("carol's page offline", `document.getElementById('conn').getAttribute('data-connected') === 'false'`, 20*time.Second)

	alice.mustEval(`document.querySelector('#messages li.msg[data-seq="`+planSeq+`"] button[data-action="edit"]').click(), true`, nil)
	alice.waitJS("the composer editing", `!document.getElementById('edit-bar').hidden && document.getElementById('input').value === 'teh plan is ready'`, 5*time.Second)
	alice.do(chromedp.SetValue(chromedp.ID("input"), "the plan is ready"), chromedp.Click(chromedp.ID("send")))
	alice.mustEval(`document.querySelector('#messages li.msg[data-seq="`+oopsSeq+`"] button[data-action="delete"]').click(), true`, nil)
	alice.mustEval(`document.querySelector('#messages li.msg[data-seq="`+oopsSeq+`"] button[data-action="confirm-delete"]').click(), true`, nil)

	shows := func(tb *tab) {
		tb.t.Helper()
		tb.waitJS("the edit", `(function () { var li = document.querySelector('#messages li.msg[data-seq="`+planSeq+`"]');
		  return !!li && li.querySelector('.text').textContent === 'the plan is ready' && /\(edited\)/.test(li.querySelector('time').textContent); })()`, 20*time.Second)
		tb.waitJS("the delete", `(function () { var li = document.querySelector('#messages li.msg[data-seq="`+oopsSeq+`"]');
		  return !!li && /deleted/.test(li.className) && li.querySelector('.text').textContent === 'This message was deleted.'; })()`, 20*time.Second)
		if strings.Contains(tb.str(`document.getElementById('messages').textContent`), "oops, wrong room") {
			tb.t.Errorf("%s: the deleted text still shows", tb.name)
		}
	}
	shows(bob)
	shows(alice)
	cut.Store(false)
	carol.waitConnected("poll")
	shows(carol)
	for _, tb := range tabs {
		tb.checkCSP()
	}
}
