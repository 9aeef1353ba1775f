package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// startChatd builds and starts the real server in dev mode on a loopback
// port and returns its URL. It stops when the test ends.
func startChatd(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "chatd")
	if out, err := exec.Command("go", "build", "-o", bin, "../chatd").CombinedOutput(); err != nil {
		t.Fatalf("build chatd: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "--addr", "127.0.0.1:0", "--data", filepath.Join(dir, "data"))
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		re := regexp.MustCompile(`msg="chatd ready" url=(\S+)`)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				ready <- m[1]
			}
		}
	}()
	select {
	case url := <-ready:
		return url
	case <-time.After(30 * time.Second):
		t.Fatal("chatd did not become ready")
		return ""
	}
}

func devToken(t *testing.T, base, name string, admin bool) string {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"name": name, "admin": admin})
	resp, err := http.Post(base+"/v1/dev/login", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v struct{ Token string }
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil || v.Token == "" {
		t.Fatalf("dev login: %v", err)
	}
	return v.Token
}

// ctl runs chatctl in process against base and returns its exit code,
// stdout and stderr.
func ctl(base, token string, args ...string) (int, string, string) {
	var out, errw bytes.Buffer
	env := map[string]string{"CHAT_URL": base, "CHAT_TOKEN": token}
	code := run(args, &out, &errw, func(k string) string { return env[k] })
	return code, out.String(), errw.String()
}

func TestChatctlAgainstServer(t *testing.T) {
	base := startChatd(t)
	admin := devToken(t, base, "ops", true)

	code, out, errs := ctl(base, admin, "status")
	if code != 0 || !strings.Contains(out, "level 0 (auto)") || !strings.Contains(out, "transport.websocket") {
		t.Fatalf("status: %d\n%s%s", code, out, errs)
	}
	code, out, errs = ctl(base, admin, "level", "set", "2", "--for", "30m")
	if code != 0 || !strings.Contains(out, "level 2 (manual until") {
		t.Fatalf("level set: %d\n%s%s", code, out, errs)
	}
	// The server acts on it: negotiate no longer offers WebSocket.
	if offer := negotiate(t, base, devToken(t, base, "alice", false)); strings.Contains(offer, "websocket") {
		t.Fatalf("level 2 still offers websocket: %s", offer)
	}
	code, out, _ = ctl(base, admin, "level", "auto")
	if code != 0 || !strings.Contains(out, "(auto)") {
		t.Fatalf("level auto: %d %s", code, out)
	}
	code, out, errs = ctl(base, admin, "flags", "set", "typing", "--rollout", "50")
	if code != 0 || strings.TrimSpace(out) != "typing: enabled=true rollout=50%" {
		t.Fatalf("flags set: %d %q %s", code, out, errs)
	}
	code, out, _ = ctl(base, admin, "flags", "list")
	if code != 0 || !regexp.MustCompile(`typing\s+true\s+50%`).MatchString(out) {
		t.Fatalf("flags list: %d\n%s", code, out)
	}
	code, out, _ = ctl(base, admin, "--json", "flags", "list")
	var flags struct {
		Audit []struct{ Actor, Name string }
	}
	if code != 0 || json.Unmarshal([]byte(out), &flags) != nil || len(flags.Audit) == 0 ||
		flags.Audit[len(flags.Audit)-1].Actor != "admin:ops" {
		t.Fatalf("json flags: %d %s", code, out)
	}

	// Errors: a non-admin token is refused with the server's words; bad
	// usage is exit 2; a bad value is the server's bad_request.
	if code, _, errs := ctl(base, devToken(t, base, "bob", false), "status"); code != 1 || !strings.Contains(errs, "forbidden") {
		t.Fatalf("non-admin: %d %s", code, errs)
	}
	if code, _, _ := ctl(base, admin, "level", "set", "7"); code != 2 {
		t.Fatalf("level 7: exit %d, want 2", code)
	}
	if code, _, errs := ctl(base, admin, "flags", "set", "typing", "--rollout", "150"); code != 1 || !strings.Contains(errs, "bad_request") {
		t.Fatalf("rollout 150: %d %s", code, errs)
	}
	if code, _, errs := ctl(base, admin, "flags", "set", "nope", "--rollout", "5"); code != 1 || !strings.Contains(errs, "not_found") {
		t.Fatalf("unknown flag: %d %s", code, errs)
	}
}

func negotiate(t *testing.T, base, token string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/v1/negotiate", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return b.String()
}
