package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/chatd/chatd/core/redis/redistest"
)

// adminToken is an admin JWT for the e2e secret.
func adminToken(t *testing.T) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": "ops", "admin": true, "exp": time.Now().Add(time.Hour).Unix()}).SignedString([]byte(e2eSecret))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// adminDo sends an admin request and decodes a 200 answer into out.
func adminDo(t *testing.T, method, url, body string, out any) int {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminToken(t))
	resp, err := newClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK && out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode
}

// TestE2ERedisRisk: chatd refuses a Redis that can lose an acked message,
// saying how to fix it, and starts on it with --redis-accept-risk (here
// its environment twin).
func TestE2ERedisRisk(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{}) // no AOF
	args := []string{"--addr", "127.0.0.1:0", "--redis", srv.URL(), "--jwt-secret", e2eSecret}
	p := launch(t, args)
	p.waitExit(t)
	if code := p.cmd.ProcessState.ExitCode(); code == 0 || !strings.Contains(p.out.String(), "--redis-accept-risk") {
		t.Fatalf("exit %d, output %q: want a refusal that names --redis-accept-risk", code, p.out.String())
	}
	p = launch(t, args, "CHAT_REDIS_ACCEPT_RISK=true")
	p.waitReady(t)
	if out := p.out.String(); !strings.Contains(out, "engine=redis") {
		t.Fatalf("ready line does not say the engine: %q", out)
	}
}

// TestE2ECluster: two chatd processes on one Redis list each other in the
// admin status, under the configured ids and addresses, and a level
// pinned on one holds on the other within 2 s.
func TestE2ECluster(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{Durable: true})
	start := func(id string) string {
		p := launch(t, []string{"--addr", "127.0.0.1:0", "--redis", srv.URL(), "--jwt-secret", e2eSecret,
			"--node-id", id, "--advertise-addr", id + ".internal:8080"})
		return p.waitReady(t)
	}
	one, two := start("n1"), start("n2")
	if code := adminDo(t, http.MethodPut, one+"/v1/admin/level", `{"level":2,"mode":"manual","for":"10m"}`, nil); code != http.StatusOK {
		t.Fatalf("pin on n1: %d", code)
	}
	type status struct {
		Level int    `json:"level"`
		Mode  string `json:"mode"`
		Nodes []struct {
			ID, Addr, Engine string
		} `json:"nodes"`
	}
	// The budget is 2 s; the test logs the time it took and fails only at
	// a generous deadline, so a loaded machine does not fail it.
	var st status
	pinned := time.Now()
	deadline := pinned.Add(20 * time.Second)
	for {
		if code := adminDo(t, http.MethodGet, two+"/v1/admin/status", "", &st); code != http.StatusOK {
			t.Fatalf("status on n2: %d", code)
		}
		if st.Level == 2 && st.Mode == "manual" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("n2 at level %d (%s) 20 s after n1 pinned 2", st.Level, st.Mode)
		}
		time.Sleep(20 * time.Millisecond) // another process: nothing to wait on but its answers
	}
	t.Logf("the pin reached n2 in %v (budget 2 s)", time.Since(pinned).Round(time.Millisecond))
	if len(st.Nodes) != 2 || st.Nodes[0].ID != "n1" || st.Nodes[0].Addr != "n1.internal:8080" ||
		st.Nodes[1].ID != "n2" || st.Nodes[1].Engine != "redis" {
		t.Fatalf("nodes on n2 = %+v", st.Nodes)
	}

	// The binary runs the engine's cluster parts: presence is the
	// cluster's, so alice, streaming from n1, is listed by n2.
	req, _ := http.NewRequest(http.MethodGet, one+"/v1/sse?rooms=general", nil)
	req.Header.Set("Authorization", "Bearer "+token(t, e2eSecret, "alice", "Alice"))
	resp, err := (&http.Client{}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("alice's stream on n1: %d %v", resp.StatusCode, err)
	}
	bob := token(t, e2eSecret, "bob", "Bob")
	deadline = time.Now().Add(20 * time.Second)
	for {
		r2, _ := http.NewRequest(http.MethodGet, two+"/v1/rooms/general/presence", nil)
		r2.Header.Set("Authorization", "Bearer "+bob)
		resp, err := newClient().Do(r2)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(body), `"alice"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("n2's presence of general is %s 20 s after alice joined on n1, want alice", body)
		}
		time.Sleep(20 * time.Millisecond) // another process: nothing to wait on but its answers
	}
}
