package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// ParseFlags turns the command line into a Config. Help goes to stderr
// and returns flag.ErrHelp.
func ParseFlags(args []string, stderr io.Writer) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("chatload", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var users, tiers, sourceIPs, typing, progress, servers string
	fs.StringVar(&c.URL, "url", "http://127.0.0.1:8080", "the server's HTTP base URL (with --servers: where the tool's own metrics and admin calls go; default the first)")
	fs.StringVar(&servers, "servers", "", "the nodes of a cluster, e.g. http://127.0.0.1:8081,http://127.0.0.1:8082: users connect to them in turn (user i to node i mod n)")
	fs.StringVar(&c.Workload, "workload", Chat, "idle, broadcast, chat or storm")
	fs.StringVar(&users, "users", "1000", "user count, or a comma list for one run each (e.g. 500,1000,5000); at most "+strconv.Itoa(MaxUsers))
	fs.IntVar(&c.RoomSize, "room-size", 0, "users per room; rooms are derived (default: chat and storm 100, idle all in one; broadcast is always one room)")
	fs.StringVar(&tiers, "tiers", "ws=100", "transport mix, e.g. ws=70,sse=20,poll=10")
	fs.BoolVar(&c.PinTier, "pin-tier", false, "keep each client on its tier instead of following tier moves")
	fs.BoolVar(&c.Compress, "compress", false, "offer compression as a browser does (permessage-deflate, gzip, deflated poll answers); compare the bytes a delivery with and without")
	fs.StringVar(&c.CAFile, "ca", "", "PEM certificates to trust for an https --url (a test server's own); SSE and polls then speak HTTP/2, as browsers do")
	fs.IntVar(&c.Senders, "senders", 0, "users that send (default: broadcast 10, chat all, storm and idle none)")
	fs.Float64Var(&c.Rate, "rate", 0, "messages per second per sender (default: chat 0.1, broadcast and storm 1)")
	fs.Float64Var(&c.TotalRate, "total-rate", 0, "messages per second over all senders; overrides --rate")
	fs.IntVar(&c.MsgSize, "msg-size", 80, "message text length in bytes, send time included")
	fs.DurationVar(&c.ReadEvery, "read-every", 0, "read receipts at most this often per room (default: chat 1s, others off)")
	fs.BoolVar(&c.NoReads, "no-reads", false, "send no read receipts")
	fs.StringVar(&typing, "typing", "", "fraction of sends preceded by typing, 0 to 1 (default: chat 0.3, others 0)")
	fs.DurationVar(&c.Duration, "duration", 0, "measured phase after everyone is connected (default 20s)")
	fs.DurationVar(&c.Drain, "drain", 0, "wait for the last deliveries after sends stop (default 15s)")
	fs.DurationVar(&c.Recover, "recover", 0, "after the drain, wait up to this long, clients connected, for the server's level to return to 0, and report when it did (default: no wait)")
	fs.DurationVar(&c.ConnectTimeout, "connect-timeout", 0, "bound on the whole connect phase (default 60s)")
	fs.IntVar(&c.ConnectParallel, "connect-parallel", 0, "clients connecting at once (default 500)")
	fs.DurationVar(&c.SendTimeout, "send-timeout", 0, "a send not acked within this is an error (default 10s)")
	fs.DurationVar(&c.MaxTime, "max-time", 0, "hard cap on the whole invocation (default 30m)")
	fs.DurationVar(&c.Sample, "sample", 0, "timeline and progress interval (default 1s)")
	fs.StringVar(&c.JWTSecret, "jwt-secret", "", "HS256 secret of the server; the tool signs its own tokens (default: dev login)")
	fs.StringVar(&sourceIPs, "source-ips", "", `local addresses to dial from, e.g. 127.0.0.2-127.0.0.9 (default that range for a loopback target; "none" for the system's choice)`)
	fs.DurationVar(&c.BackoffBase, "backoff-base", 0, "client reconnect backoff base (default the client's, 1s)")
	fs.DurationVar(&c.BackoffMax, "backoff-max", 0, "client reconnect backoff cap (default the client's, 30s)")
	fs.StringVar(&c.ServerCmd, "server-cmd", "", "shell command that starts the server; the tool starts and stops it, and storm kills it with SIGKILL and restarts it")
	fs.DurationVar(&c.StormAfter, "storm-after", 0, "storm: hold this long before killing the server (default 5s)")
	fs.DurationVar(&c.StormTimeout, "storm-timeout", 0, "storm: bound on waiting for the server to die and for every client to come back (default 120s)")
	fs.StringVar(&c.Level, "level", "", `before each run, set the degradation level through the admin API: "auto", or 0-3 to pin it`)
	fs.StringVar(&c.Out, "out", "", "directory for report.md, report.json and the PNG plots")
	fs.StringVar(&progress, "progress", "auto", "progress on stderr: auto, tty (one refreshing line), plain (periodic lines) or off")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "usage: chatload [flags]   (see go doc ./cmd/chatload)")
			fs.SetOutput(stderr)
			fs.PrintDefaults()
		}
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("%w: unexpected argument %q", ErrConfig, fs.Arg(0))
	}
	var errs []error
	if servers != "" {
		for _, s := range strings.Split(servers, ",") {
			if s = strings.TrimSpace(s); s != "" {
				c.Servers = append(c.Servers, s)
			}
		}
		urlSet := false
		fs.Visit(func(f *flag.Flag) { urlSet = urlSet || f.Name == "url" })
		if !urlSet {
			c.URL = "" // the first of --servers
		}
	}
	for _, s := range strings.Split(users, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			errs = append(errs, fmt.Errorf("%w: --users: %q is not a number", ErrConfig, s))
			continue
		}
		c.Users = append(c.Users, n)
	}
	var err error
	if c.Tiers, err = parseTiers(tiers); err != nil {
		errs = append(errs, err)
	}
	switch sourceIPs {
	case "":
	case "none":
		c.NoSourceIPs = true
	default:
		if c.SourceIPs, err = parseIPRange(sourceIPs); err != nil {
			errs = append(errs, err)
		}
	}
	if typing != "" {
		f, err := strconv.ParseFloat(typing, 64)
		if err != nil || f < 0 || f > 1 {
			errs = append(errs, fmt.Errorf("%w: --typing must be between 0 and 1", ErrConfig))
		}
		if c.TypingShare = f; f == 0 {
			c.TypingShare = -1 // none, rather than the workload's default
		}
	}
	switch progress {
	case "auto":
		c.Progress, c.Tty = os.Stderr, isTerminal(os.Stderr)
	case "tty":
		c.Progress, c.Tty = os.Stderr, true
	case "plain":
		c.Progress = os.Stderr
	case "off":
	default:
		errs = append(errs, fmt.Errorf("%w: --progress must be auto, tty, plain or off", ErrConfig))
	}
	return c, errors.Join(errs...)
}

// isTerminal reports whether f is a character device, as a terminal is.
func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
