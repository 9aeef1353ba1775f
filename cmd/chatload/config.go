package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/chatd/chatd/transports/client"
)

// Workloads the engine runs.
const (
	Idle      = "idle"      // connect and hold
	Broadcast = "broadcast" // one room, a few senders, everyone receives
	Chat      = "chat"      // rooms of RoomSize, every user sends
	Storm     = "storm"     // connect, then the server dies and comes back
)

// MaxUsers caps one run's user count, whatever the flags say.
const MaxUsers = 20000

// MaxServers caps the nodes of --servers.
const MaxServers = 64

// ErrConfig is the sentinel a configuration error wraps.
var ErrConfig = errors.New("chatload: bad configuration")

// TierShare is one entry of the tier mix: a share of the users that
// start on a transport.
type TierShare struct {
	Tier   string // client.WebSocket, client.SSE or client.Poll
	Weight int    // a relative share, e.g. 70
}

// Config is one invocation of the engine. The zero value (apart from URL)
// is a chat workload of 1000 WebSocket users for 20 s; each field's
// comment gives its default, which may depend on the workload.
type Config struct {
	// URL is the server's HTTP base, e.g. http://127.0.0.1:8080: the node
	// the clients connect to, and the one the tool's own calls (metrics,
	// admin status and level) go to. Required unless Servers is set; then
	// it is Servers[0] when empty.
	URL string
	// Servers are the nodes of a cluster sharing one engine: user i
	// connects to Servers[i mod len(Servers)], so consecutive users, and
	// so every room, are spread over the nodes. The tool reads /metrics
	// of each (and adds them up), waits for each to be ready, logs dev
	// users in at their own node, and reads each room's head through a
	// client on every node. Empty: URL alone.
	Servers  []string
	Workload string // Idle, Broadcast, Chat or Storm; Chat
	Users    []int  // user counts, one run each, in order; [1000]

	// RoomSize is the number of users per room; rooms are derived from it
	// (the last may be smaller). Broadcast puts everyone in one room.
	// Idle: everyone in one room; Chat and Storm: 100.
	RoomSize int
	// Tiers is the transport mix; all WebSocket when empty.
	Tiers []TierShare
	// PinTier keeps each client on its tier. Otherwise a client follows
	// tier moves as the browser does: a WebSocket user may step down to
	// SSE and poll and back, an SSE user to poll and back.
	PinTier bool
	// Compress makes the clients offer compression as a browser does:
	// permessage-deflate with context takeover allowed on WebSocket
	// (transports/wsinflate), Accept-Encoding: gzip on SSE and polls, and
	// deflated poll answers (deflate=, client.Config.PollDeflate), as the
	// page asks where the browser has DecompressionStream. Off by
	// default: decompressing costs the tool's core, and the server's
	// figures are the point. Report.Traffic's bytes show what it saves.
	Compress bool
	// CAFile names PEM certificates to trust for an https URL, such as a
	// test server's self-signed one; "": the system's roots. Over https
	// the HTTP tiers speak HTTP/2, as a browser does.
	CAFile string

	// Senders is how many users send: Broadcast 10, Chat every user,
	// Idle none, Storm none.
	Senders int
	// Rate is messages per second per sender: Broadcast 1, Chat 0.1 (one
	// per 10 s), Storm 1. TotalRate, when set, is spread over the senders
	// instead.
	Rate      float64
	TotalRate float64
	MsgSize   int // bytes of message text, send time included; 80

	// ReadEvery throttles read receipts like a page: a read after new
	// messages, at most once per ReadEvery per room. Chat: 1s; otherwise
	// off. NoReads turns them off for Chat.
	ReadEvery time.Duration
	NoReads   bool
	// TypingShare is the fraction of sends preceded by a typing signal;
	// Chat 0.3, otherwise 0. Negative means none.
	TypingShare float64

	Duration        time.Duration // the measured phase after everyone is connected; 20s
	Drain           time.Duration // how long to wait for the last deliveries after sends stop; 15s
	Recover         time.Duration // after the drain, how long to wait, clients connected, for the level to be 0 again; 0: no wait
	ConnectTimeout  time.Duration // for the whole connect phase; 60s
	ConnectParallel int           // clients connecting at once; 500
	SendTimeout     time.Duration // one send's wait for its ack before it counts as an error; 10s
	MaxTime         time.Duration // hard cap on everything, all runs; 30m
	Sample          time.Duration // timeline and progress interval; 1s

	// JWTSecret makes the tool sign its own HS256 tokens; empty means the
	// server is in dev mode and tokens come from POST /v1/dev/login.
	JWTSecret string
	// SourceIPs are the local addresses clients dial from, round robin.
	// Nil means 127.0.0.2-127.0.0.9 when the target is loopback, and the
	// system's choice otherwise.
	SourceIPs   []net.IP
	NoSourceIPs bool // dial from the system's choice, even for a loopback target

	// Client timings, passed to every client; the client's defaults (the
	// browser page's) when zero.
	BackoffBase, BackoffMax time.Duration

	// ServerCmd, when set, is a shell command that starts the server
	// under test: the tool starts it, waits for /readyz, stops it at the
	// end, and in Storm kills it with SIGKILL and starts it again.
	ServerCmd string
	// Level, when set, is put to the admin API before each run: "auto"
	// leaves the level to the controller, "0".."3" pins it. Empty leaves
	// the server as it is.
	Level string
	// StormAfter is how long Storm holds the connected clients before it
	// kills the server (with ServerCmd); 5s. StormTimeout bounds the
	// wait for the server to die (without ServerCmd) and for every client
	// to come back; 120s.
	StormAfter   time.Duration
	StormTimeout time.Duration

	Out      string    // directory for report.md, report.json and the plots; none when empty
	Progress io.Writer // the progress line; nil for none
	Tty      bool      // Progress is a terminal: one refreshing line

	// RoomPrefix names this invocation's rooms: <prefix>-<users>-<n>.
	// Empty means "load-" and a fresh id, so that runs never share rooms.
	RoomPrefix string
}

// withDefaults fills the zero fields for the workload.
func (c Config) withDefaults() Config {
	d := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	if c.Workload == "" {
		c.Workload = Chat
	}
	if c.URL == "" && len(c.Servers) > 0 {
		c.URL = c.Servers[0]
	}
	if len(c.Users) == 0 {
		c.Users = []int{1000}
	}
	if len(c.Tiers) == 0 {
		c.Tiers = []TierShare{{Tier: client.WebSocket, Weight: 1}}
	}
	if c.MsgSize <= 0 {
		c.MsgSize = 80
	}
	d(&c.Duration, 20*time.Second)
	d(&c.Drain, 15*time.Second)
	d(&c.ConnectTimeout, 60*time.Second)
	d(&c.SendTimeout, 10*time.Second)
	d(&c.MaxTime, 30*time.Minute)
	d(&c.Sample, time.Second)
	d(&c.StormAfter, 5*time.Second)
	d(&c.StormTimeout, 120*time.Second)
	if c.ConnectParallel <= 0 {
		c.ConnectParallel = 500
	}
	switch c.Workload {
	case Chat:
		if c.RoomSize <= 0 {
			c.RoomSize = 100
		}
		if c.Rate <= 0 && c.TotalRate <= 0 {
			c.Rate = 0.1
		}
		if c.ReadEvery <= 0 && !c.NoReads {
			c.ReadEvery = time.Second
		}
		if c.TypingShare == 0 {
			c.TypingShare = 0.3
		}
	case Broadcast:
		if c.Senders <= 0 {
			c.Senders = 10
		}
		if c.Rate <= 0 && c.TotalRate <= 0 {
			c.Rate = 1
		}
	case Storm:
		if c.RoomSize <= 0 {
			c.RoomSize = 100
		}
		if c.Rate <= 0 && c.TotalRate <= 0 {
			c.Rate = 1
		}
	}
	if c.NoReads {
		c.ReadEvery = 0
	}
	if c.TypingShare < 0 {
		c.TypingShare = 0
	}
	if c.RoomPrefix == "" {
		c.RoomPrefix = "load-" + strconv.FormatInt(time.Now().UnixMilli()%1e9, 36)
	}
	return c
}

// validate reports what makes c unusable, wrapping ErrConfig.
func (c Config) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if !httpURL(c.URL) {
		bad("--url must be an http(s) URL such as http://127.0.0.1:8080, not %q", c.URL)
	}
	for _, s := range c.Servers {
		if !httpURL(s) {
			bad("--servers: %q is not an http(s) URL such as http://127.0.0.1:8081", s)
		}
	}
	if len(c.Servers) > MaxServers {
		bad("--servers: %d nodes, at most %d", len(c.Servers), MaxServers)
	}
	if len(c.Servers) > 1 && (c.Workload == Storm || c.ServerCmd != "") {
		bad("--workload storm and --server-cmd take one server, not %d --servers", len(c.Servers))
	}
	switch c.Workload {
	case Idle, Broadcast, Chat, Storm:
	default:
		bad("--workload must be idle, broadcast, chat or storm, not %q", c.Workload)
	}
	for _, n := range c.Users {
		if n < 1 || n > MaxUsers {
			bad("--users: %d is not between 1 and %d", n, MaxUsers)
		}
	}
	total := 0
	for _, s := range c.Tiers {
		if s.Tier != client.WebSocket && s.Tier != client.SSE && s.Tier != client.Poll {
			bad("--tiers: unknown transport %q", s.Tier)
		}
		if s.Weight < 0 {
			bad("--tiers: negative share for %s", s.Tier)
		}
		total += s.Weight
	}
	if total <= 0 {
		bad("--tiers: the shares add up to nothing")
	}
	if c.Senders < 0 || c.Rate < 0 || c.TotalRate < 0 || c.TypingShare > 1 {
		bad("--senders, --rate and --total-rate must not be negative, --typing at most 1")
	}
	if c.MsgSize > 4096 {
		bad("--msg-size: %d is over the 4096 characters a message may have", c.MsgSize)
	}
	if c.Workload == Storm && len(c.Users) > 1 {
		bad("--workload storm takes one user count")
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return nil
}

// httpURL reports whether s is an absolute http(s) URL with a host.
func httpURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// servers returns the nodes clients connect to: Servers, or URL alone.
func (c Config) servers() []string {
	if len(c.Servers) > 0 {
		return c.Servers
	}
	return []string{c.URL}
}

// senders returns how many users send in a run of n users.
func (c Config) senders(n int) int {
	s := c.Senders
	switch {
	case c.Workload == Chat && s <= 0:
		s = n
	case c.Workload == Idle:
		s = 0
	}
	return min(s, n)
}

// interval returns the gap between two sends of one sender when s users
// send; 0 when nobody sends.
func (c Config) interval(s int) time.Duration {
	rate := c.Rate
	if c.TotalRate > 0 && s > 0 {
		rate = c.TotalRate / float64(s)
	}
	if s == 0 || rate <= 0 {
		return 0
	}
	return time.Duration(float64(time.Second) / rate)
}

// roomSize returns the users per room in a run of n users.
func (c Config) roomSize(n int) int {
	if c.Workload == Broadcast || c.Workload == Idle && c.RoomSize <= 0 || c.RoomSize > n {
		return n
	}
	return c.RoomSize
}

// tierCycle deals the tier shares out smoothly (nginx's smooth weighted
// round robin): user i starts on cycle[i%len(cycle)], so that any run of
// consecutive users has the mix. The cycle is the sum of the weights
// divided by their greatest common divisor, so ws=70,sse=20,poll=10 gives
// a cycle of 10.
func tierCycle(tiers []TierShare) []string {
	g := 0
	for _, s := range tiers {
		g = gcd(g, s.Weight)
	}
	total := 0
	weights := make([]int, len(tiers))
	for i, s := range tiers {
		if g > 0 {
			weights[i] = s.Weight / g
		}
		total += weights[i]
	}
	current := make([]int, len(tiers))
	out := make([]string, 0, total)
	for range total {
		best := 0
		for i := range tiers {
			current[i] += weights[i]
			if current[i] > current[best] {
				best = i
			}
		}
		current[best] -= total
		out = append(out, tiers[best].Tier)
	}
	return out
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// transports returns the preference list of a client that starts on tier.
func (c Config) transports(tier string) []string {
	if c.PinTier {
		return []string{tier}
	}
	switch tier {
	case client.SSE:
		return []string{client.SSE, client.Poll}
	case client.Poll:
		return []string{client.Poll}
	}
	return []string{client.WebSocket, client.SSE, client.Poll}
}

// parseTiers reads "ws=70,sse=20,poll=10"; ws, websocket, sse and poll
// are accepted names.
func parseTiers(s string) ([]TierShare, error) {
	var out []TierShare
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, w, ok := strings.Cut(part, "=")
		weight := 1
		if ok {
			n, err := strconv.Atoi(w)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("%w: --tiers: bad share %q", ErrConfig, part)
			}
			weight = n
		}
		switch strings.ToLower(name) {
		case "ws", "websocket":
			name = client.WebSocket
		case "sse":
			name = client.SSE
		case "poll":
			name = client.Poll
		default:
			return nil, fmt.Errorf("%w: --tiers: unknown transport %q", ErrConfig, name)
		}
		out = append(out, TierShare{Tier: name, Weight: weight})
	}
	return out, nil
}

// parseIPRange reads "127.0.0.2-127.0.0.9", a single address, or a comma
// list of either. At most 256 addresses.
func parseIPRange(s string) ([]net.IP, error) {
	var out []net.IP
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(part, "-")
		a, b := net.ParseIP(lo).To4(), net.ParseIP(hi).To4()
		if !isRange {
			b = a
		}
		if a == nil || b == nil {
			return nil, fmt.Errorf("%w: --source-ips: %q is not an IPv4 address or range", ErrConfig, part)
		}
		from, to := ipToInt(a), ipToInt(b)
		if to < from || to-from >= 256 || len(out)+int(to-from) >= 256 {
			return nil, fmt.Errorf("%w: --source-ips: %q is empty or over 256 addresses", ErrConfig, part)
		}
		for v := from; v <= to; v++ {
			out = append(out, net.IPv4(byte(v>>24), byte(v>>16), byte(v>>8), byte(v)))
		}
	}
	return out, nil
}

func ipToInt(ip net.IP) uint32 {
	return uint32(ip[0])<<24 | uint32(ip[1])<<16 | uint32(ip[2])<<8 | uint32(ip[3])
}
