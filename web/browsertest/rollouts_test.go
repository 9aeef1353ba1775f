package browsertest

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/chatd/chatd/featureflags/rollout"
)

// haltedPlan is a plan on typing whose errors guard tripped at 50%, as
// the rollout manager leaves one: back at the last good step, 10%.
func haltedPlan(t *testing.T) rollout.Plan {
	t.Helper()
	at := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	reason := "halted at 50%: errors inside 0.31 per session vs outside 0.02 (guard errors); back to 10%"
	return rollout.Plan{
		Flag: "typing", Steps: []int{10, 50, 100}, Hold: rollout.Duration(24 * time.Hour),
		Window: rollout.Duration(10 * time.Minute), Guards: rollout.DefaultGuards(),
		State: rollout.Halted, Step: 0, Percent: 10, StepStart: at, LastGood: 10, Reason: reason,
		StartedBy: "admin:ops", StartedAt: at.Add(-24 * time.Hour), UpdatedAt: at,
		History: []rollout.Event{
			{At: at.Add(-24 * time.Hour), Kind: "start", Percent: 10, Actor: "admin:ops"},
			{At: at.Add(-time.Minute), Kind: "step", Percent: 50, Actor: "rollout"},
			{At: at, Kind: "halt", Percent: 10, Actor: "rollout", Guard: "errors", Reason: reason},
		},
	}
}

// TestOpsRollouts: the ops page shows the guarded rollouts with the
// server's state: a running plan with its percent, a halted one with the
// reason it halted; its buttons pause a plan on the server, and its form
// starts one.
func TestOpsRollouts(t *testing.T) {
	srv := startServer(t)
	data, err := rollout.EncodePlans([]rollout.Plan{haltedPlan(t)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rollout.DecodePlans(data); err != nil {
		t.Fatalf("the seeded plan is not one the server would load: %v", err)
	}
	// The plans file is read at start: seed it, then restart on the data.
	if err := os.WriteFile(filepath.Join(srv.data, rollout.FileName), data, 0o644); err != nil {
		t.Fatal(err)
	}
	srv.kill()
	srv.restart()
	admin := srv.loginAdmin(t, "ops")
	admin.do("POST", "/v1/admin/rollouts", map[string]any{"flag": "read_receipts", "steps": []int{10, 50, 100}, "hold": "24h"}, nil)

	ops := newUser(t).open("ops", srv.URL()+"/ops.html", tabOptions{preScript: quickOps})
	ops.opsLogin("ops")
	running := `#rollouts li[data-flag="read_receipts"]`
	halted := `#rollouts li[data-flag="typing"]`
	ops.waitJS("the running plan", `(function () { var li = document.querySelector('`+running+`');
	  return !!li && li.getAttribute('data-state') === 'running' && /10% of users/.test(li.textContent); })()`, 10*time.Second)
	ops.waitJS("the halted plan and why", `(function () { var li = document.querySelector('`+halted+`');
	  return !!li && li.getAttribute('data-state') === 'halted' &&
	    li.querySelector('.rollout-reason').textContent === `+jsString(haltedPlan(t).Reason)+`; })()`, 10*time.Second)

	ops.mustEval(`document.querySelector('`+running+` button[data-op="pause"]').click(), true`, nil)
	var plans struct {
		Rollouts []struct{ Flag, State string } `json:"rollouts"`
	}
	waitUntil(t, "the server to hold the paused plan", 10*time.Second, func() bool {
		admin.do("GET", "/v1/admin/rollouts", nil, &plans)
		for _, p := range plans.Rollouts {
			if p.Flag == "read_receipts" {
				return p.State == "paused"
			}
		}
		return false
	})
	ops.waitJS("the page to show it paused", `document.querySelector('`+running+`').getAttribute('data-state') === 'paused'`, 10*time.Second)

	ops.waitJS("the flag list in the form", `!!document.querySelector('#ro-flag option[value="presence"]')`, 10*time.Second)
	ops.mustEval(`(function () { document.getElementById('ro-flag').value = 'presence';
	  document.getElementById('ro-steps').value = '25,100'; document.getElementById('ro-hold').value = '1h';
	  document.getElementById('ro-go').click(); return true; })()`, nil)
	ops.waitJS("the started plan", `!!document.querySelector('#rollouts li[data-flag="presence"][data-state="running"]')`, 10*time.Second)
	ops.checkCSP()

	if os.Getenv("CHAT_SCREENSHOT") == "1" {
		ops.do(chromedp.EmulateViewport(1280, 900))
		ops.mustEval(`document.getElementById('rollouts-h').scrollIntoView(), true`, nil)
		buf, err := chromedp.Run(ops.ctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join("..", "..", "docs", "ops-rollouts.png"), buf, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Log("wrote docs/ops-rollouts.png")
	}
}
