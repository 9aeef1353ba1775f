package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"syscall"
	"testing"
)

// js is v as JSON text, for adminDo.
func js(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

type plan struct {
	Flag    string `json:"flag"`
	State   string `json:"state"`
	Percent int    `json:"percent"`
	Steps   []int  `json:"steps"`
}

// TestE2ERolloutAPI: the admin API starts a guarded rollout, which sets
// the flag's first step (and says so in the flags' audit log); a second
// plan for the flag and bad requests are refused; a pause survives a
// restart on the same data; the admin status lists the plan.
func TestE2ERolloutAPI(t *testing.T) {
	data := t.TempDir()
	p, base := startChatd(t, data)
	start := map[string]any{"flag": "read_receipts", "steps": []int{10, 50, 100}, "hold": "1h", "window": "10m"}

	var got plan
	if code := adminDo(t, "POST", base+"/v1/admin/rollouts", js(start), &got); code != 200 {
		t.Fatalf("start: %d", code)
	}
	if got.State != "running" || got.Percent != 10 {
		t.Fatalf("started plan %+v, want running at 10%%", got)
	}
	var flags struct {
		Flags []struct {
			Name    string `json:"name"`
			Rollout int    `json:"rollout"`
		} `json:"flags"`
		Audit []struct {
			Actor string `json:"actor"`
		} `json:"audit"`
	}
	adminDo(t, "GET", base+"/v1/admin/flags", "", &flags)
	found := false
	for _, f := range flags.Flags {
		if f.Name == "read_receipts" {
			found = true
			if f.Rollout != 10 {
				t.Errorf("read_receipts rollout %d after the start, want 10", f.Rollout)
			}
		}
	}
	if !found {
		t.Error("read_receipts missing from the flags")
	}
	if n := len(flags.Audit); n == 0 || !strings.Contains(flags.Audit[n-1].Actor+flags.Audit[0].Actor, "rollout") {
		t.Errorf("the flags audit does not name the rollout: %+v", flags.Audit)
	}

	for _, c2 := range []struct {
		name string
		body any
		want int
	}{
		{"a second plan for the flag", start, http.StatusConflict},
		{"an unknown flag", map[string]any{"flag": "nope", "steps": []int{10}, "hold": "1h"}, http.StatusBadRequest},
		{"steps going down", map[string]any{"flag": "typing", "steps": []int{50, 10}, "hold": "1h"}, http.StatusBadRequest},
		{"no hold", map[string]any{"flag": "typing", "steps": []int{10}}, http.StatusBadRequest},
	} {
		if code := adminDo(t, "POST", base+"/v1/admin/rollouts", js(c2.body), nil); code != c2.want {
			t.Errorf("%s: %d, want %d", c2.name, code, c2.want)
		}
	}
	if code := adminDo(t, "POST", base+"/v1/admin/rollouts/typing/pause", "", nil); code != http.StatusNotFound {
		t.Errorf("pausing a flag without a plan: %d, want 404", code)
	}
	if code := adminDo(t, "POST", base+"/v1/admin/rollouts/read_receipts/pause", "", &got); code != 200 || got.State != "paused" {
		t.Fatalf("pause: %d %+v", code, got)
	}
	if code := adminDo(t, "POST", base+"/v1/admin/rollouts/read_receipts/pause", "", nil); code != http.StatusConflict {
		t.Errorf("pausing a paused plan: %d, want 409", code)
	}

	// A restart on the same data finds the plan where it was.
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	p.waitExit(t)
	_, base = startChatd(t, data)
	var status struct {
		Rollouts []plan `json:"rollouts"`
	}
	adminDo(t, "GET", base+"/v1/admin/status", "", &status)
	if len(status.Rollouts) != 1 || status.Rollouts[0].State != "paused" || status.Rollouts[0].Percent != 10 {
		t.Fatalf("after a restart the admin status lists %+v, want the paused plan at 10%%", status.Rollouts)
	}
	if code := adminDo(t, "POST", base+"/v1/admin/rollouts/read_receipts/abort", js(map[string]bool{"to_zero": true}), &got); code != 200 || got.State != "aborted" || got.Percent != 0 {
		t.Fatalf("abort to zero: %d %+v", code, got)
	}
}
