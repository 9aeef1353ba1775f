package main

import (
	"bytes"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"

	"github.com/chatd/chatd/core/files/filestest"
)

// upload posts one file to room as user tok and decodes the answer.
func upload(t *testing.T, base, tok, room, name string, data []byte) (int, map[string]any) {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	_ = mw.WriteField("room", room)
	fw, _ := mw.CreateFormFile("file", name)
	fw.Write(data)
	mw.Close()
	req, _ := http.NewRequest(http.MethodPost, base+"/v1/files", &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := newClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// authGet fetches path as tok.
func authGet(t *testing.T, base, tok, path string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+path, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := newClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp, data
}

// authPost posts a JSON body as tok and decodes the answer.
func authPost(t *testing.T, base, tok, path string, body any) (int, map[string]any) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, base+path, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := newClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// TestE2EFiles: the server as shipped shares files: alice uploads an image
// to her DM with bob and sends it; bob's history carries it with its
// thumbnail and dimensions, and he downloads both; carol, outside the DM,
// gets 403; an HTML file downloads as an attachment; deleting the message
// removes the file.
func TestE2EFiles(t *testing.T) {
	_, base := startChatd(t, t.TempDir())
	alice, bob, carol := token(t, e2eSecret, "alice", "Alice"), token(t, e2eSecret, "bob", "Bob"), token(t, e2eSecret, "carol", "Carol")
	const dm = "dm:alice:bob"

	code, img := upload(t, base, alice, dm, "cat.png", filestest.PNG(640, 400, false))
	if code != http.StatusCreated || img["id"] == nil || img["thumb_url"] == nil {
		t.Fatalf("upload: %d %v", code, img)
	}
	if w, h := img["width"], img["height"]; w != float64(640) || h != float64(400) {
		t.Errorf("dimensions %v×%v, want 640×400", w, h)
	}
	code, ack := authPost(t, base, alice, "/v1/send", map[string]any{"room": dm, "id": "m1", "text": "look", "files": []any{img["id"]}})
	if code != http.StatusOK {
		t.Fatalf("send with the file: %d %v", code, ack)
	}
	page := history(t, newClient(), base, bob, dm, 0, 10)
	if len(page.Messages) != 1 {
		t.Fatalf("bob's history: %+v", page.Messages)
	}
	resp, data := authGet(t, base, bob, "/v1/rooms/"+dm+"/history")
	if !strings.Contains(string(data), img["id"].(string)) || !strings.Contains(string(data), `"thumb_url"`) {
		t.Errorf("the message in history does not carry the file: %s", data)
	}
	resp, data = authGet(t, base, bob, img["url"].(string))
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "image/png" || len(data) == 0 {
		t.Errorf("bob downloading the image: %d %q, %d bytes", resp.StatusCode, resp.Header.Get("Content-Type"), len(data))
	}
	if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("download without nosniff: %v", resp.Header)
	}
	resp, _ = authGet(t, base, bob, img["thumb_url"].(string))
	if resp.StatusCode != http.StatusOK {
		t.Errorf("bob downloading the thumbnail: %d", resp.StatusCode)
	}
	resp, _ = authGet(t, base, carol, img["url"].(string))
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("carol, outside the DM, downloading: %d, want 403", resp.StatusCode)
	}
	if code, _ := upload(t, base, carol, dm, "x.txt", []byte("hi")); code != http.StatusForbidden {
		t.Errorf("carol uploading to the DM: %d, want 403", code)
	}

	code, page2 := upload(t, base, alice, "general", "page.html", []byte("<html><script>alert(1)</script></html>"))
	if code != http.StatusCreated {
		t.Fatalf("upload html: %d %v", code, page2)
	}
	resp, _ = authGet(t, base, carol, page2["url"].(string))
	if cd := resp.Header.Get("Content-Disposition"); resp.StatusCode != http.StatusOK || !strings.HasPrefix(cd, "attachment") ||
		resp.Header.Get("Content-Type") == "text/html" || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "sandbox") {
		t.Errorf("an HTML file downloads as %d, disposition %q, type %q, CSP %q; want an attachment, not text/html, sandboxed",
			resp.StatusCode, cd, resp.Header.Get("Content-Type"), resp.Header.Get("Content-Security-Policy"))
	}

	seq := ack["seq"]
	if code, out := authPost(t, base, alice, "/v1/delete", map[string]any{"room": dm, "id": "d1", "seq": seq}); code != http.StatusOK {
		t.Fatalf("delete: %d %v", code, out)
	}
	waitFor(t, "the deleted message's file to go", func() bool {
		resp, _ := authGet(t, base, alice, img["url"].(string))
		return resp.StatusCode == http.StatusNotFound
	})
}
