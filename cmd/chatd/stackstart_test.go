package main

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

func TestWithStackStart(t *testing.T) {
	for _, c := range []struct {
		in, want string
		change   bool
	}{
		{"", "adaptivestackstart=0", true},
		{"gctrace=1", "gctrace=1,adaptivestackstart=0", true},
		{"adaptivestackstart=1", "adaptivestackstart=1", false}, // the operator's setting stands
		{"gctrace=1, adaptivestackstart=0", "gctrace=1, adaptivestackstart=0", false},
		{"adaptivestackstartx=1", "adaptivestackstartx=1,adaptivestackstart=0", true},
	} {
		got, change := withStackStart(c.in)
		if got != c.want || change != c.change {
			t.Errorf("withStackStart(%q) = %q, %v; want %q, %v", c.in, got, change, c.want, c.change)
		}
	}
}

// The binary runs with fixed starting stacks unless GODEBUG says
// otherwise: the environment of the running process (after chatd has
// executed itself again) holds the setting, and the process serves.
func TestStackStartInEnvironment(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc/<pid>/environ")
	}
	for _, c := range []struct{ env, want string }{
		{"", "GODEBUG=adaptivestackstart=0"},
		{"GODEBUG=gctrace=0", "GODEBUG=gctrace=0,adaptivestackstart=0"},
		{"GODEBUG=adaptivestackstart=1", "GODEBUG=adaptivestackstart=1"},
	} {
		env := []string{"GODEBUG="}
		if c.env != "" {
			env = []string{c.env}
		}
		p := launch(t, []string{"--addr", "127.0.0.1:0", "--data", t.TempDir(), "--jwt-secret", e2eSecret}, env...)
		p.waitReady(t)
		raw, err := os.ReadFile("/proc/" + strconv.Itoa(p.cmd.Process.Pid) + "/environ")
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, kv := range strings.Split(string(raw), "\x00") {
			if strings.HasPrefix(kv, "GODEBUG=") {
				got = append(got, kv)
			}
		}
		if len(got) != 1 || got[0] != c.want {
			t.Errorf("started with %q: environment has %q, want %q", c.env, got, c.want)
		}
		_ = p.cmd.Process.Kill()
	}
}
