package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

const usage = `usage: chatctl [--url URL] [--token JWT] [--json] COMMAND
  status                                   level, mode, breakers, flags, connections
  level set N [--for 30m]                  pin the level (0-3), optionally for a while
  level auto                               hand the level back to the breakers
  flags list                               every flag with its rollout
  flags set NAME [--rollout P] [--enabled=true|false]
  rollout status                           every guarded rollout plan, its step and guards
  rollout start FLAG --steps 10,50,100 --hold 24h [--window 10m] [--guards JSON]
  rollout pause|resume FLAG                hold a plan at its step, or carry on (a halted one retries its step)
  rollout abort FLAG [--to-zero]           stop a plan; the flag stays at its last good step (or 0)
environment: CHAT_URL, CHAT_TOKEN`

// cli is one invocation. Static after parsing.
type cli struct {
	url, token string
	json       bool
	out, errw  io.Writer
	http       *http.Client
}

func run(args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	c := &cli{out: stdout, errw: stderr, http: &http.Client{Timeout: 15 * time.Second}}
	fs := flag.NewFlagSet("chatctl", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.url, "url", envOr(getenv, "CHAT_URL", "http://localhost:8080"), "server URL")
	fs.StringVar(&c.token, "token", getenv("CHAT_TOKEN"), "admin JWT")
	fs.BoolVar(&c.json, "json", false, "print the server's JSON")
	if err := fs.Parse(args); err != nil {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	c.url = strings.TrimSuffix(c.url, "/")
	defer c.http.CloseIdleConnections()
	if err := c.dispatch(fs.Args()); err != nil {
		var u usageError
		if errors.As(err, &u) {
			fmt.Fprintf(stderr, "chatctl: %v\n%s\n", err, usage)
			return 2
		}
		fmt.Fprintln(stderr, "chatctl:", err)
		return 1
	}
	return 0
}

type usageError string

func (u usageError) Error() string { return string(u) }

func envOr(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}

func (c *cli) dispatch(args []string) error {
	if len(args) == 0 {
		return usageError("no command")
	}
	switch args[0] {
	case "status":
		return c.status()
	case "level":
		if len(args) >= 2 && args[1] == "auto" {
			return c.setLevel(map[string]any{"mode": "auto"})
		}
		if len(args) >= 3 && args[1] == "set" {
			return c.levelSet(args[2:])
		}
		return usageError("level set N [--for D] | level auto")
	case "flags":
		if len(args) >= 2 && args[1] == "list" {
			return c.flagsList()
		}
		if len(args) >= 3 && args[1] == "set" {
			return c.flagsSet(args[2], args[3:])
		}
		return usageError("flags list | flags set NAME [--rollout P] [--enabled=B]")
	case "rollout":
		return c.rollout(args[1:])
	}
	return usageError("unknown command " + strconv.Quote(args[0]))
}

func (c *cli) levelSet(args []string) error {
	n, err := strconv.Atoi(args[0])
	if err != nil || n < 0 || n > 3 {
		return usageError("level must be 0, 1, 2 or 3")
	}
	fs := flag.NewFlagSet("level set", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	d := fs.Duration("for", 0, "how long the pin lasts")
	if err := fs.Parse(args[1:]); err != nil {
		return usageError(err.Error())
	}
	body := map[string]any{"level": n, "mode": "manual"}
	if *d > 0 {
		body["for"] = d.String()
	}
	return c.setLevel(body)
}

func (c *cli) setLevel(body map[string]any) error {
	var st status
	raw, err := c.do(http.MethodPut, "/v1/admin/level", body, &st)
	if err != nil {
		return err
	}
	return c.print(raw, func() { c.printStatus(st) })
}

func (c *cli) flagsSet(name string, args []string) error {
	fs := flag.NewFlagSet("flags set", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	rollout := fs.Int("rollout", -1, "percentage of users, 0-100")
	enabled := fs.String("enabled", "", "true or false")
	if err := fs.Parse(args); err != nil {
		return usageError(err.Error())
	}
	body := map[string]any{}
	if *rollout >= 0 {
		body["rollout"] = *rollout
	}
	if *enabled != "" {
		b, err := strconv.ParseBool(*enabled)
		if err != nil {
			return usageError("--enabled takes true or false")
		}
		body["enabled"] = b
	}
	if len(body) == 0 {
		return usageError("give --rollout or --enabled")
	}
	var f flagView
	raw, err := c.do(http.MethodPut, "/v1/admin/flags/"+name, body, &f)
	if err != nil {
		return err
	}
	return c.print(raw, func() { fmt.Fprintf(c.out, "%s: enabled=%t rollout=%d%%\n", f.Name, f.Enabled, f.Rollout) })
}

func (c *cli) flagsList() error {
	var v struct {
		Flags []flagView `json:"flags"`
	}
	raw, err := c.do(http.MethodGet, "/v1/admin/flags", nil, &v)
	if err != nil {
		return err
	}
	return c.print(raw, func() { c.printFlags(v.Flags) })
}

func (c *cli) status() error {
	var st status
	raw, err := c.do(http.MethodGet, "/v1/admin/status", nil, &st)
	if err != nil {
		return err
	}
	return c.print(raw, func() { c.printStatus(st) })
}

// do calls the admin API and decodes the answer into out. An error
// envelope becomes an error with its code and message.
func (c *cli) do(method, path string, body, out any) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.url+path, rd)
	if err != nil {
		return nil, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		var e struct{ Code, Message string }
		if json.Unmarshal(raw, &e) == nil && e.Code != "" {
			return nil, fmt.Errorf("%s (%s, HTTP %d)", e.Message, e.Code, resp.StatusCode)
		}
		return nil, fmt.Errorf("HTTP %d from %s", resp.StatusCode, path)
	}
	return raw, json.Unmarshal(raw, out)
}

func (c *cli) print(raw []byte, human func()) error {
	if c.json {
		_, err := c.out.Write(append(bytes.TrimSpace(raw), '\n'))
		return err
	}
	human()
	return nil
}

type flagView struct {
	Name    string `json:"name"`
	Enabled bool   `json:"enabled"`
	Rollout int    `json:"rollout"`
}

type status struct {
	Level    int        `json:"level"`
	Mode     string     `json:"mode"`
	Until    *time.Time `json:"until"`
	Breakers []struct {
		Name      string  `json:"name"`
		State     string  `json:"state"`
		Value     float64 `json:"value"`
		Threshold float64 `json:"threshold"`
		Relief    int     `json:"relief"`
	} `json:"breakers"`
	Flags       []flagView     `json:"flags"`
	Connections map[string]int `json:"connections"`
	Nodes       []struct {
		ID     string `json:"id"`
		Addr   string `json:"addr"`
		Engine string `json:"engine"`
	} `json:"nodes"`
}

func (c *cli) printStatus(st status) {
	pin := ""
	if st.Until != nil {
		pin = " until " + st.Until.Local().Format(time.RFC3339)
	}
	fmt.Fprintf(c.out, "level %d (%s%s)\n", st.Level, st.Mode, pin)
	names := make([]string, 0, len(st.Connections))
	for n := range st.Connections {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprint(c.out, "connections:")
	for _, n := range names {
		fmt.Fprintf(c.out, " %s=%d", n, st.Connections[n])
	}
	fmt.Fprintln(c.out)
	for _, n := range st.Nodes {
		fmt.Fprintf(c.out, "node %s %s (%s)\n", n.ID, n.Addr, n.Engine)
	}
	tw := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "BREAKER\tSTATE\tVALUE\tTHRESHOLD\tRELIEF")
	for _, b := range st.Breakers {
		fmt.Fprintf(tw, "%s\t%s\t%g\t%g\t%d\n", b.Name, b.State, b.Value, b.Threshold, b.Relief)
	}
	tw.Flush()
	c.printFlags(st.Flags)
}

func (c *cli) printFlags(flags []flagView) {
	tw := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FLAG\tENABLED\tROLLOUT")
	for _, f := range flags {
		fmt.Fprintf(tw, "%s\t%t\t%d%%\n", f.Name, f.Enabled, f.Rollout)
	}
	tw.Flush()
}
