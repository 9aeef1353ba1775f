package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/chatd/chatd/featureflags/rollout"
)

const rolloutUsage = "rollout status | rollout start FLAG --steps 10,50,100 --hold 24h [--window 10m] [--guards JSON] | " +
	"rollout pause|resume FLAG | rollout abort FLAG [--to-zero]"

// rollout dispatches "chatctl rollout ...".
func (c *cli) rollout(args []string) error {
	if len(args) == 0 {
		return usageError(rolloutUsage)
	}
	switch {
	case args[0] == "status" && len(args) == 1:
		return c.rolloutStatus()
	case args[0] == "start" && len(args) >= 2:
		return c.rolloutStart(args[1], args[2:])
	case (args[0] == "pause" || args[0] == "resume") && len(args) == 2:
		return c.rolloutOp(args[1], args[0], map[string]any{})
	case args[0] == "abort" && len(args) >= 2:
		fs := flag.NewFlagSet("rollout abort", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		zero := fs.Bool("to-zero", false, "set the flag to 0% instead of the last good step")
		if err := fs.Parse(args[2:]); err != nil || fs.NArg() > 0 {
			return usageError("rollout abort FLAG [--to-zero]")
		}
		return c.rolloutOp(args[1], "abort", map[string]any{"to_zero": *zero})
	}
	return usageError(rolloutUsage)
}

func (c *cli) rolloutStart(name string, args []string) error {
	fs := flag.NewFlagSet("rollout start", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	steps := fs.String("steps", "", "ascending percents, e.g. 10,50,100")
	hold := fs.Duration("hold", 0, "time at each step, e.g. 24h")
	window := fs.Duration("window", 0, "guard window; default 10m, at most the hold")
	guards := fs.String("guards", "", `guard settings as JSON, e.g. {"errors":{"ratio":3}}`)
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		return usageError("rollout start FLAG --steps 10,50,100 --hold 24h [--window 10m] [--guards JSON]")
	}
	if strings.HasPrefix(name, "-") {
		return usageError("rollout start takes the flag name first")
	}
	var pct []int
	for _, s := range strings.Split(*steps, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return usageError("--steps takes percents separated by commas, e.g. 10,50,100")
		}
		pct = append(pct, n)
	}
	if *hold <= 0 {
		return usageError("--hold takes a duration above 0, e.g. 24h")
	}
	body := map[string]any{"flag": name, "steps": pct, "hold": hold.String()}
	if *window != 0 {
		body["window"] = window.String()
	}
	if *guards != "" {
		var g json.RawMessage
		if err := json.Unmarshal([]byte(*guards), &g); err != nil {
			return usageError("--guards takes a JSON object: " + err.Error())
		}
		body["guards"] = g
	}
	var p rollout.Plan
	raw, err := c.do(http.MethodPost, "/v1/admin/rollouts", body, &p)
	if err != nil {
		return err
	}
	return c.print(raw, func() { c.printPlans([]rollout.Plan{p}) })
}

func (c *cli) rolloutOp(name, op string, body map[string]any) error {
	var p rollout.Plan
	raw, err := c.do(http.MethodPost, "/v1/admin/rollouts/"+url.PathEscape(name)+"/"+op, body, &p)
	if err != nil {
		return err
	}
	return c.print(raw, func() { c.printPlans([]rollout.Plan{p}) })
}

func (c *cli) rolloutStatus() error {
	var v struct {
		Rollouts []rollout.Plan `json:"rollouts"`
	}
	raw, err := c.do(http.MethodGet, "/v1/admin/rollouts", nil, &v)
	if err != nil {
		return err
	}
	return c.print(raw, func() {
		if len(v.Rollouts) == 0 {
			fmt.Fprintln(c.out, "no rollout plans")
			return
		}
		c.printPlans(v.Rollouts)
	})
}

// printPlans prints one line per plan, then, per plan, why it last halted
// and what its guards last judged.
func (c *cli) printPlans(plans []rollout.Plan) {
	tw := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FLAG\tSTATE\tPERCENT\tSTEP\tSTEPS\tHOLD\tNEXT STEP\tLAST GOOD\tSTARTED BY")
	for _, p := range plans {
		next := "-"
		if !p.NextStepAt.IsZero() {
			next = "in " + time.Until(p.NextStepAt).Round(time.Second).String()
		}
		steps := make([]string, len(p.Steps))
		for i, s := range p.Steps {
			steps[i] = strconv.Itoa(s)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d%%\t%d/%d\t%s\t%v\t%s\t%d%%\t%s\n", p.Flag, p.State, p.Percent, p.Step+1,
			len(p.Steps), strings.Join(steps, ","), time.Duration(p.Hold), next, p.LastGood, p.StartedBy)
	}
	tw.Flush()
	for _, p := range plans {
		if p.Reason != "" {
			fmt.Fprintf(c.out, "%s: %s\n", p.Flag, p.Reason)
		}
		if len(p.Checks) > 0 {
			parts := make([]string, len(p.Checks))
			for i, ch := range p.Checks {
				parts[i] = fmt.Sprintf("%s %s (inside %s, outside %s)", ch.Guard, ch.Verdict,
					checkValue(ch.Guard, ch.Inside, ch.InsideSamples), checkValue(ch.Guard, ch.Outside, ch.OutsideSamples))
			}
			fmt.Fprintf(c.out, "%s guards: %s\n", p.Flag, strings.Join(parts, "; "))
		}
	}
}

// checkValue shows a guard's value in its unit, with its sample count.
func checkValue(guard string, v float64, n int64) string {
	if guard == rollout.GuardDelivery {
		return fmt.Sprintf("p99 %v of %d", time.Duration(v*float64(time.Second)).Round(time.Millisecond), n)
	}
	return fmt.Sprintf("%.1f%% of %d", 100*v, n)
}
