package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/chatd/chatd/core/auth"
)

// Config is everything chatd can be told on the command line. Each flag
// has an environment twin; a flag given on the command line wins.
type Config struct {
	Addr               string
	Data               string
	JWTSecret          string
	JWTPublicKey       string
	JWTIssuer          string
	JWTAudience        string
	TicketSecret       string
	TicketTTL          time.Duration // a ticket's life
	Redis              string
	RedisRisk          bool   // start on a Redis that can lose an acked message
	NodeID             string // this node's id among the cluster's; "": hostname-port-<random>
	AdvertiseAddr      string // the address shown for this node; "": from the listener
	Flags              string
	AllowedOrigins     string
	HistoryMax         int
	HistoryAge         time.Duration
	Heartbeat          time.Duration
	MaxWriteDelay      time.Duration // core.Config.MaxWriteDelay
	RelievedWriteDelay time.Duration // core.Config.RelievedWriteDelay
	EscalateAfter      int           // degrade.Config.EscalateAfter
	TripAtOnce         float64       // degrade.Config.TripAtOnce
	ProbeBusy          float64       // degrade.Config.ProbeBusy
	LogLevel           string
	DrainTimeout       time.Duration
	Files              FilesConfig // see files.go

	// Limits on every connection, before any credential is checked. See
	// limits.go for the defaults and why.
	MaxHeaderBytes int           // request line and headers; <= 0: 32 KiB
	HeaderTimeout  time.Duration // to read a request's headers; 0: none
	BodyTimeout    time.Duration // to read a request's body, streams excepted; 0: none
	WriteTimeout   time.Duration // an answer's writes without progress, streams excepted; 0: none
	IdleTimeout    time.Duration // between requests on a kept-alive connection; 0: none
	MaxConns       int           // open connections on the node; 0: no cap
	MaxConnsPerIP  int           // open connections per client address; 0: no cap
	PollLinger     time.Duration // least time between two answers to one poll client; 0: none
	PollMaxPace    time.Duration // the most a busy poll client's answers are spaced while the node is behind; 0: never
	PollLane       bool          // busy poll clients' connections served off net/http's request cycle, and idle REST and page connections held there (httpx.Lane)
	PollRunning    int           // polls that do their work at once; 0: one per CPU; negative: no bound
	WritersRunning int           // session writers that write at once; 0: one per CPU; negative: no bound
	PollPark       time.Duration // how long a held poll waits in its request before it is parked; 0: never parked
	PollQuiet      time.Duration // how long a session must have gone without news for its held poll to park; 0: park whatever came before
	QuietGC        time.Duration // how often to check for a quiet spell to collect in (quietgc.go); 0: never

	// TLS: both or neither. See tls.go.
	TLSCert   string // PEM certificate chain; "": plain HTTP
	TLSKey    string // PEM private key of TLSCert
	DebugAddr string // loopback address for Go profiles; empty: off
}

// ParseFlags reads args and then, for flags not given, the environment.
func (m *Main) ParseFlags(args []string, getenv func(string) string) error {
	c := &m.Config
	fs := flag.NewFlagSet("chatd", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	envs := map[string]string{} // flag name → environment variable
	type def struct{ name, env, usage string }
	str := func(p *string, d def, value string) {
		fs.StringVar(p, d.name, value, d.usage+" (env "+d.env+")")
		envs[d.name] = d.env
	}
	fs.StringVar(&c.Addr, "addr", ":8080", "listen address (env CHAT_ADDR)")
	envs["addr"] = "CHAT_ADDR"
	str(&c.Data, def{"data", "CHAT_DATA", "data directory"}, "./data")
	str(&c.JWTSecret, def{"jwt-secret", "CHAT_JWT_SECRET", "HS256 secret"}, "")
	str(&c.JWTPublicKey, def{"jwt-public-key", "CHAT_JWT_PUBLIC_KEY", "PEM public key file (RS256, ES256 or EdDSA)"}, "")
	str(&c.JWTIssuer, def{"jwt-issuer", "CHAT_JWT_ISSUER", "required iss claim"}, "")
	str(&c.JWTAudience, def{"jwt-audience", "CHAT_JWT_AUDIENCE", "required aud claim"}, "")
	str(&c.TicketSecret, def{"ticket-secret", "CHAT_TICKET_SECRET", "key for connection tickets; share it across nodes"}, "")
	fs.DurationVar(&c.TicketTTL, "ticket-ttl", auth.DefaultTicketTTL,
		"a ticket's life, and so of an event stream, or a WebSocket not yet refreshed, it opens (env CHAT_TICKET_TTL)")
	envs["ticket-ttl"] = "CHAT_TICKET_TTL"
	str(&c.Redis, def{"redis", "CHAT_REDIS", "Redis URL for the clustered engine"}, "")
	fs.BoolVar(&c.RedisRisk, "redis-accept-risk", false,
		"start on a Redis whose persistence can lose an acknowledged message (env CHAT_REDIS_ACCEPT_RISK)")
	envs["redis-accept-risk"] = "CHAT_REDIS_ACCEPT_RISK"
	str(&c.NodeID, def{"node-id", "CHAT_NODE_ID", "this node's id in the cluster (default hostname-port-<6 random hex>, new at each start)"}, "")
	str(&c.AdvertiseAddr, def{"advertise-addr", "CHAT_ADVERTISE_ADDR", "the address shown for this node in admin status (default from --addr)"}, "")
	str(&c.Flags, def{"flags", "CHAT_FLAGS", "feature flags file"}, "")
	str(&c.AllowedOrigins, def{"allowed-origins", "CHAT_ALLOWED_ORIGINS", "comma-separated browser origins besides same-origin"}, "")
	str(&c.LogLevel, def{"log-level", "CHAT_LOG_LEVEL", "debug, info, warn or error"}, "info")
	fs.IntVar(&c.HistoryMax, "history-max", 10000, "messages retained per room (env CHAT_HISTORY_MAX)")
	envs["history-max"] = "CHAT_HISTORY_MAX"
	fs.DurationVar(&c.HistoryAge, "history-age", 0, "drop messages older than this; 0 keeps them (env CHAT_HISTORY_AGE)")
	envs["history-age"] = "CHAT_HISTORY_AGE"
	fs.DurationVar(&c.Heartbeat, "heartbeat", 15*time.Second, "server ping interval (env CHAT_HEARTBEAT)")
	envs["heartbeat"] = "CHAT_HEARTBEAT"
	fs.DurationVar(&c.MaxWriteDelay, "max-write-delay", 50*time.Millisecond,
		"most a writer waits to batch while the node is behind (a tenth of the delivery latency); 0: never (env CHAT_MAX_WRITE_DELAY)")
	envs["max-write-delay"] = "CHAT_MAX_WRITE_DELAY"
	fs.DurationVar(&c.RelievedWriteDelay, "relieved-write-delay", time.Second,
		"most a writer waits to batch while the degradation level is 1 or more (a quarter of the delivery latency, at least half of this); 0: as --max-write-delay (env CHAT_RELIEVED_WRITE_DELAY)")
	envs["relieved-write-delay"] = "CHAT_RELIEVED_WRITE_DELAY"
	fs.IntVar(&c.EscalateAfter, "escalate-after", 0,
		"bad readings, while the delivery-latency breaker is tripped, that escalate it from level 1 to 3; 0: never (env CHAT_ESCALATE_AFTER)")
	envs["escalate-after"] = "CHAT_ESCALATE_AFTER"
	fs.Float64Var(&c.TripAtOnce, "trip-at-once", 4,
		"a latency breaker trips on one reading this many times its threshold; negative: never (env CHAT_TRIP_AT_ONCE)")
	envs["trip-at-once"] = "CHAT_TRIP_AT_ONCE"
	fs.Float64Var(&c.ProbeBusy, "probe-busy", 0.5,
		"a tripped latency breaker holds its probe of the level above while the node uses this fraction of its CPU or more, or its reading is still over (at most 3 breaker timeouts); negative: never holds (env CHAT_PROBE_BUSY)")
	envs["probe-busy"] = "CHAT_PROBE_BUSY"
	fs.DurationVar(&c.DrainTimeout, "drain-timeout", 10*time.Second, "how long shutdown waits for sessions (env CHAT_DRAIN_TIMEOUT)")
	envs["drain-timeout"] = "CHAT_DRAIN_TIMEOUT"
	limitFlags(fs, c, envs)
	filesFlags(fs, c, envs)
	tlsFlags(fs, c, envs)
	debugFlags(fs, c, envs)

	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(m.Stderr)
			fs.PrintDefaults()
		}
		return err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if env := envs[f.Name]; env != "" && !given[f.Name] {
			if v := getenv(env); v != "" {
				if err := f.Value.Set(v); err != nil {
					errs = append(errs, fmt.Errorf("%s: %w", env, err))
				}
			}
		}
	})
	if c.JWTSecret != "" && c.JWTPublicKey != "" {
		errs = append(errs, errors.New("give --jwt-secret or --jwt-public-key, not both"))
	}
	if c.TicketTTL < time.Second || c.TicketTTL > time.Hour {
		// A ticket travels in a URL and may leak: its life bounds what a
		// leaked one opens.
		errs = append(errs, fmt.Errorf("--ticket-ttl %v: give 1s to 1h", c.TicketTTL))
	}
	if err := c.checkTLS(); err != nil {
		errs = append(errs, err)
	}
	if err := c.checkDebug(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func parseLevel(s string) slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(s))); err != nil {
		return slog.LevelInfo
	}
	return l
}
