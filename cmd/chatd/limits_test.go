package main

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/chatd/chatd/transports/poll"
)

// TestLimitFlags checks the limit flags' defaults, environment twins and
// precedence.
func TestLimitFlags(t *testing.T) {
	env := func(kv map[string]string) func(string) string {
		return func(k string) string { return kv[k] }
	}
	m := NewMain()
	if err := m.ParseFlags(nil, env(nil)); err != nil {
		t.Fatal(err)
	}
	c := m.Config
	if c.MaxHeaderBytes != 32<<10 || c.HeaderTimeout != 5*time.Second || c.BodyTimeout != 10*time.Second ||
		c.WriteTimeout != 30*time.Second || c.IdleTimeout != 2*time.Minute || c.MaxConnsPerIP != 4096 || c.MaxConns != nodeConnCap(fileLimit()) {
		t.Errorf("defaults: %+v", c)
	}
	m = NewMain()
	err := m.ParseFlags([]string{"--max-conns", "7", "--body-timeout=3s"}, env(map[string]string{
		"CHAT_MAX_HEADER_BYTES": "16384", "CHAT_HEADER_TIMEOUT": "2s", "CHAT_BODY_TIMEOUT": "9s",
		"CHAT_IDLE_TIMEOUT": "1m", "CHAT_MAX_CONNS": "9", "CHAT_MAX_CONNS_PER_IP": "0", "CHAT_WRITE_TIMEOUT": "4s",
	}))
	if err != nil {
		t.Fatal(err)
	}
	c = m.Config
	if c.MaxHeaderBytes != 16384 || c.HeaderTimeout != 2*time.Second || c.BodyTimeout != 3*time.Second ||
		c.IdleTimeout != time.Minute || c.MaxConns != 7 || c.MaxConnsPerIP != 0 || c.WriteTimeout != 4*time.Second {
		t.Errorf("flags over env twins: %+v", c)
	}
	if err := NewMain().ParseFlags(nil, env(map[string]string{"CHAT_MAX_CONNS": "many"})); err == nil {
		t.Error("a bad CHAT_MAX_CONNS was accepted")
	}
}

// --poll-linger shows poll's default and means what it says: 0 is none
// (poll.Config takes a negative value for that), not the default.
func TestPollLingerFlag(t *testing.T) {
	for _, c := range []struct {
		args []string
		want time.Duration
	}{
		{nil, poll.DefaultLinger},
		{[]string{"--poll-linger", "250ms"}, 250 * time.Millisecond},
		{[]string{"--poll-linger", "0"}, -1},
	} {
		m := NewMain()
		if err := m.ParseFlags(c.args, func(string) string { return "" }); err != nil {
			t.Fatal(err)
		}
		if got := zeroOff(m.Config.PollLinger); got != c.want {
			t.Errorf("%v: poll.Config.Linger %v, want %v", c.args, got, c.want)
		}
	}
}

// --poll-park and --poll-quiet read the same way: 0 is off (never
// parked; parked whatever came before), and the environment sets them.
func TestPollParkFlags(t *testing.T) {
	for _, f := range []struct {
		flag, env string
		def       time.Duration
		get       func(Config) time.Duration
	}{
		{"--poll-park", "CHAT_POLL_PARK", poll.DefaultPark, func(c Config) time.Duration { return c.PollPark }},
		{"--poll-quiet", "CHAT_POLL_QUIET", poll.DefaultQuiet, func(c Config) time.Duration { return c.PollQuiet }},
	} {
		for _, c := range []struct {
			args []string
			env  string
			want time.Duration
		}{
			{nil, "", f.def},
			{nil, "1s", time.Second},
			{[]string{f.flag, "0"}, "1s", -1},
		} {
			m := NewMain()
			if err := m.ParseFlags(c.args, oneEnv(f.env, c.env)); err != nil {
				t.Fatal(err)
			}
			if got := zeroOff(f.get(m.Config)); got != c.want {
				t.Errorf("%v with %s=%q: %v, want %v", c.args, f.env, c.env, got, c.want)
			}
		}
	}
}

// --max-write-delay and --relieved-write-delay read the same way: 0 is
// never (core.Config takes a negative value for that), and the
// environment sets them.
func TestWriteDelayFlags(t *testing.T) {
	for _, c := range []struct {
		args     []string
		env, val string
		want     time.Duration
		got      func(Config) time.Duration
	}{
		{nil, "CHAT_MAX_WRITE_DELAY", "", 50 * time.Millisecond, maxWriteDelay},
		{nil, "CHAT_MAX_WRITE_DELAY", "100ms", 100 * time.Millisecond, maxWriteDelay},
		{[]string{"--max-write-delay", "0"}, "CHAT_MAX_WRITE_DELAY", "100ms", -1, maxWriteDelay},
		{nil, "CHAT_RELIEVED_WRITE_DELAY", "", time.Second, relievedWriteDelay},
		{nil, "CHAT_RELIEVED_WRITE_DELAY", "500ms", 500 * time.Millisecond, relievedWriteDelay},
		{[]string{"--relieved-write-delay", "0"}, "CHAT_RELIEVED_WRITE_DELAY", "1s", -1, relievedWriteDelay},
	} {
		m := NewMain()
		if err := m.ParseFlags(c.args, oneEnv(c.env, c.val)); err != nil {
			t.Fatal(err)
		}
		if got := zeroOff(c.got(m.Config)); got != c.want {
			t.Errorf("%v with %s=%q: %v, want %v", c.args, c.env, c.val, got, c.want)
		}
	}
}

func maxWriteDelay(c Config) time.Duration      { return c.MaxWriteDelay }
func relievedWriteDelay(c Config) time.Duration { return c.RelievedWriteDelay }

// TestNodeConnCap checks the default node cap: the descriptor limit less
// its reserve, or half the limit when that is more.
func TestNodeConnCap(t *testing.T) {
	for _, tc := range []struct {
		nofile uint64
		want   int
	}{
		{0, 0}, {100, 50}, {255, 127}, {256, 128}, {1024, 896}, {20000, 19872}, {1 << 40, 1<<30 - 128},
	} {
		if got := nodeConnCap(tc.nofile); got != tc.want {
			t.Errorf("nodeConnCap(%d) = %d, want %d", tc.nofile, got, tc.want)
		}
	}
}

// TestStreamingRoute checks which requests count as streams.
func TestStreamingRoute(t *testing.T) {
	for _, tc := range []struct {
		method, target string
		want           bool
	}{
		{"GET", "/v1/ws", true}, {"GET", "/v1/sse?rooms=a", true}, {"GET", "/v1/poll", true},
		{"POST", "/v1/poll", false}, {"GET", "/v1/negotiate", false}, {"POST", "/v1/send", false},
		{"GET", "/v1/ws/", false},
	} {
		r := httptest.NewRequest(tc.method, tc.target, http.NoBody)
		if got := streamingRoute(r); got != tc.want {
			t.Errorf("%s %s: streaming %v, want %v", tc.method, tc.target, got, tc.want)
		}
	}
}

// oneEnv is an environment with one variable set.
func oneEnv(key, value string) func(string) string {
	return func(k string) string {
		if k == key {
			return value
		}
		return ""
	}
}
