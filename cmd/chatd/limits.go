package main

import (
	"context"
	"flag"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chatd/chatd/transports/httpx"
	"github.com/chatd/chatd/transports/poll"
)

// Defaults for the limits every connection meets before any credential is
// checked, and why. nginx and Envoy are the yardsticks.
const (
	// defaultMaxHeaderBytes is the contract's 32 KiB header block, as
	// nginx's large_client_header_buffers (4 × 8 KiB); Envoy allows 60 KiB.
	// Go's reader lets up to 4 KiB more through (its bufio slop) and
	// answers 431 past that, so a header block that never ends costs at
	// most 36 KiB plus buffers instead of Go's default 1 MB.
	defaultMaxHeaderBytes = 32 << 10
	// defaultHeaderTimeout bounds reading a request's headers, which
	// clients send in one go. nginx waits 60 s (client_header_timeout);
	// 5 s is ample for a few KiB on a slow mobile link and frees a slow
	// header's connection twelve times sooner.
	defaultHeaderTimeout = 5 * time.Second
	// defaultBodyTimeout bounds reading a whole request body: our bodies
	// are at most 64 KiB, 6.4 KiB/s at worst. It is a deadline for the
	// whole body, not per read as nginx's client_body_timeout, which a
	// byte every few seconds would keep alive forever.
	defaultBodyTimeout = 10 * time.Second
	// defaultWriteTimeout bounds how long an answer that is not a stream
	// may make no progress to its client (httpx.WriteLimits): a client
	// that never reads holds its connection that long, not for ever.
	// nginx's send_timeout is 60 s between two writes; ours are pages,
	// JSON and files, which a client that reads at all takes far sooner.
	defaultWriteTimeout = 30 * time.Second
	// defaultIdleTimeout is how long a kept-alive connection may wait for
	// its next request. It is above the 60 s of nginx's upstream keepalive
	// and of common load balancers, so a proxy in front never reuses a
	// connection chatd is closing; poll clients ask at least every 25 s.
	defaultIdleTimeout = 2 * time.Minute
	// defaultMaxConnsPerIP leaves room for a NATed office and for our load
	// tests: 10,000 clients over 8 source addresses, two connections each
	// on SSE or poll (the stream, and requests), is 2,500 per address.
	defaultMaxConnsPerIP = 4096
	// fdReserve is the descriptors kept back from connections for the
	// store, the log, the listener, the flags watcher and outgoing
	// connections. The node cap also keeps back one descriptor per refusal
	// in flight (httpx.DefaultRefusing).
	fdReserve = 64
)

// limitFlags defines the limit flags on fs, with their environment twins.
func limitFlags(fs *flag.FlagSet, c *Config, envs map[string]string) {
	intFlag := func(p *int, name, env string, value int, usage string) {
		fs.IntVar(p, name, value, usage+" (env "+env+")")
		envs[name] = env
	}
	durFlag := func(p *time.Duration, name, env string, value time.Duration, usage string) {
		fs.DurationVar(p, name, value, usage+" (env "+env+")")
		envs[name] = env
	}
	intFlag(&c.MaxHeaderBytes, "max-header-bytes", "CHAT_MAX_HEADER_BYTES", defaultMaxHeaderBytes,
		"largest request header block; larger gets 431")
	durFlag(&c.HeaderTimeout, "header-timeout", "CHAT_HEADER_TIMEOUT", defaultHeaderTimeout,
		"time to read a request's headers; 0: none")
	durFlag(&c.BodyTimeout, "body-timeout", "CHAT_BODY_TIMEOUT", defaultBodyTimeout,
		"time to read a request body (streams excepted); later gets 408; 0: none")
	durFlag(&c.WriteTimeout, "write-timeout", "CHAT_WRITE_TIMEOUT", defaultWriteTimeout,
		"how long an answer may go without progress writing to a client that does not read it (streams excepted); the connection then closes; 0: none")
	durFlag(&c.IdleTimeout, "idle-timeout", "CHAT_IDLE_TIMEOUT", defaultIdleTimeout,
		"how long a kept-alive connection waits for its next request; 0: none")
	intFlag(&c.MaxConns, "max-conns", "CHAT_MAX_CONNS", nodeConnCap(fileLimit()),
		"open connections on the node, past which new ones get 503; 0: no cap (default: descriptor limit minus a reserve)")
	intFlag(&c.MaxConnsPerIP, "max-conns-per-ip", "CHAT_MAX_CONNS_PER_IP", defaultMaxConnsPerIP,
		"open connections per client address (IPv6: per /64), past which new ones get 429; 0: no cap")
	durFlag(&c.PollLinger, "poll-linger", "CHAT_POLL_LINGER", poll.DefaultLinger,
		"least time between two answers to one long-poll client while news flows, so that a busy room goes out in batches; 0: none")
	durFlag(&c.PollPark, "poll-park", "CHAT_POLL_PARK", poll.DefaultPark,
		"how long a held long-poll waits with no news before the server takes its connection over from net/http, at a fraction of the memory (over plain HTTP/1.1 its answer keeps the connection for the client's next poll; otherwise it closes it); 0: never")
	durFlag(&c.PollQuiet, "poll-quiet", "CHAT_POLL_QUIET", poll.DefaultQuiet,
		"how long a long-poll client must have gone without news for its held poll to be parked; a busier one's poll stays held; 0: park after --poll-park whatever came before")
	durFlag(&c.PollMaxPace, "poll-max-pace", "CHAT_POLL_MAX_PACE", poll.DefaultMaxPace,
		"the most a busy long-poll client's answers are spaced while the node is behind (goroutines waiting 30 ms or more to run), so that clients re-polling as fast as they are answered cannot keep it at its core; the same signal puts presence off, for at most 5 s; 0: never, neither")
	fs.BoolVar(&c.PollLane, "poll-lane", true,
		"serve the next polls of a busy long-poll client's kept-alive HTTP/1.1 connection on a loop of the server's own instead of net/http's request cycle, at about a sixth less CPU an answer, and hold idle kept-alive REST and page connections there at about two thirds of net/http's memory (serving the REST reads negotiate, me and rooms); anything else on the connection goes back to net/http, and TLS connections are not taken (env CHAT_POLL_LANE)")
	envs["poll-lane"] = "CHAT_POLL_LANE"
	intFlag(&c.PollRunning, "poll-running", "CHAT_POLL_RUNNING", 0,
		"how many long-polls do their work at once, the rest parked until a slot is free (a poll waiting for news holds none), so that thousands of busy poll clients do not queue ahead of sends and commits; 0: one per CPU the process may use; negative: no bound")
	intFlag(&c.WritersRunning, "writers-running", "CHAT_WRITERS_RUNNING", 0,
		"how many WebSocket and SSE session writers write at once, the rest parked until a slot is free, so that the writers a busy room wakes do not queue ahead of reads, commits and fan-out; a writer whose client's socket is full gives its slot up before it waits, and at degradation level 1 and above none takes one; 0: one per CPU the process may use; negative: no bound")
	durFlag(&c.QuietGC, "quiet-gc", "CHAT_QUIET_GC", defaultQuietGC,
		"how often to check whether the node has been quiet, and if so collect, so that stacks and heap grown in a burst go back to the system; 0: never")
}

// zeroOff is a duration flag where 0 means none (--poll-linger,
// --max-write-delay, --relieved-write-delay) as poll.Config.Linger and
// core.Config's write delays take it, where 0 means their default and a
// negative value none.
func zeroOff(d time.Duration) time.Duration {
	if d <= 0 {
		return -1
	}
	return d
}

// nodeConnCap is the default node-wide connection cap for a descriptor
// limit of nofile: nofile − fdReserve − httpx.DefaultRefusing, or half of
// nofile when that leaves less than half. 0 (no cap) when the limit is
// unknown.
func nodeConnCap(nofile uint64) int {
	const maxCap = 1 << 30
	if nofile == 0 {
		return 0
	}
	if nofile > maxCap {
		nofile = maxCap
	}
	reserve := uint64(fdReserve + httpx.DefaultRefusing)
	if nofile < 2*reserve {
		return int(nofile / 2)
	}
	return int(nofile - reserve)
}

// maxHeaderBytes is the configured header limit, or the default.
func (c Config) maxHeaderBytes() int {
	if c.MaxHeaderBytes <= 0 {
		return defaultMaxHeaderBytes
	}
	return c.MaxHeaderBytes
}

// streamingRoute reports the requests that hold their connection open:
// the transports' GET endpoints. They get no body deadline. These are
// httpapi's transport paths.
func streamingRoute(r *http.Request) bool {
	if r.Method != http.MethodGet {
		return false
	}
	switch r.URL.Path {
	case "/v1/ws", "/v1/sse", "/v1/poll":
		return true
	}
	return false
}

// listen listens on addr without TCP keep-alive probes: every
// connection has a liveness check of its own (WebSocket pings, SSE
// heartbeats, the poll's hold, the idle, header and body timeouts), and
// Go's default probes cost four setsockopt calls an accepted connection
// (in a reconnect storm, 47,000 of the node's 202,000 system calls).
func listen(ctx context.Context, addr string) (net.Listener, error) {
	return (&net.ListenConfig{KeepAlive: -1}).Listen(ctx, "tcp", addr)
}

// httpServer wraps ln in the connection caps (kept in m.ln) and returns
// the server with the header, body, write and idle limits. It has no
// WriteTimeout, which would cut streams: httpx.WriteLimits bounds the
// writes of everything else.
func (m *Main) httpServer(ln net.Listener, reg prometheus.Registerer) *http.Server {
	c := m.Config
	if advised := nodeConnCap(fileLimit()); advised > 0 && c.MaxConns > advised {
		m.log.Warn("--max-conns is above the descriptor limit minus its reserve; accept may fail with EMFILE",
			"max_conns", c.MaxConns, "advised", advised)
	}
	// Under TLS a refusal cannot be answered in plain text before the
	// handshake: it closes (see ConnLimits.Silent).
	m.ln = httpx.NewListener(ln, httpx.ConnLimits{PerIP: c.MaxConnsPerIP, Total: c.MaxConns, Metrics: reg,
		Silent: c.TLSCert != ""})
	body := httpx.BodyLimits{Timeout: c.BodyTimeout, Streaming: streamingRoute}
	writes := httpx.WriteLimits{Timeout: c.WriteTimeout, Streaming: streamingRoute}
	m.log.Info("connection limits", "max_conns", c.MaxConns, "max_conns_per_ip", c.MaxConnsPerIP,
		"max_header_bytes", c.maxHeaderBytes(), "header_timeout", c.HeaderTimeout,
		"body_timeout", c.BodyTimeout, "write_timeout", c.WriteTimeout, "idle_timeout", c.IdleTimeout)
	return &http.Server{
		Handler:           body.Middleware(writes.Middleware(m.api.Handler())),
		MaxHeaderBytes:    c.maxHeaderBytes(),
		ReadHeaderTimeout: c.HeaderTimeout,
		IdleTimeout:       c.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(m.log.Handler(), slog.LevelWarn),
		ConnContext:       httpx.KeepConn, // for httpx.Cork and httpx.ClientGone
	}
}
