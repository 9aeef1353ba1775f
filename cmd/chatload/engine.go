package main

import (
	"context"
	"fmt"
	"net/http"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"
)

// Run runs cfg's workload once per user count in cfg.Users, in order, and
// returns the report. With cfg.Out it writes the report files after each
// run, so an interrupted invocation keeps what it measured. Its error
// means the tool could not run at all (a bad Config, too few file
// descriptors, a server that is not ready, a server command that does
// not start); a failed check (lost or duplicated messages, clients that
// never connected) is a line in Report.Failures instead.
//
// Everything it starts has ended when it returns: clients, their
// connections, and the server it started with ServerCmd.
func Run(ctx context.Context, cfg Config) (Report, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return Report{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.MaxTime)
	defer cancel()
	rep := Report{Started: time.Now(), Target: strings.Join(cfg.servers(), ", "), Machine: machine(),
		Failures: []string{}, Warnings: []string{}}
	soft, hard, err := raiseNoFile()
	if err != nil {
		rep.Warnings = append(rep.Warnings, "RLIMIT_NOFILE: "+err.Error())
	}
	rep.Machine.NoFileSoft, rep.Machine.NoFileHard = soft, hard
	ips := cfg.SourceIPs
	if len(ips) == 0 && !cfg.NoSourceIPs && allLoopback(cfg.servers()) {
		ips, _ = parseIPRange(defaultSourceIPs)
	}
	rep.Settings = settings(cfg, len(ips))
	if need := fdNeed(cfg); soft > 0 && need > soft {
		return rep, fmt.Errorf("%w: about %d file descriptors needed, RLIMIT_NOFILE is %d", ErrConfig, need, soft)
	}
	tlsConf, err := tlsConfig(cfg.CAFile)
	if err != nil {
		return rep, err
	}
	dials := newDialers(ips, 10*time.Second, restConns(cfg), cfg.Compress, tlsConf)
	defer dials.closeIdle()
	ctl := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true, TLSClientConfig: tlsConf.Clone()}}
	defer ctl.CloseIdleConnections()
	prog := newProgress(cfg.Progress, cfg.Tty)
	if cfg.ServerCmd != "" {
		srv, stop, err := launch(ctx, cfg, ctl)
		if err != nil {
			return rep, err
		}
		defer stop()
		return runAll(ctx, cfg, rep, dials, ctl, prog, srv)
	}
	urls := cfg.servers()
	if !slices.Contains(urls, cfg.URL) {
		urls = append(slices.Clip(urls), cfg.URL)
	}
	for _, u := range urls {
		if _, err := waitReadiness(ctx, ctl, u, true, 100*time.Millisecond, 30*time.Second); err != nil {
			return rep, fmt.Errorf("chatload: %s is not ready (GET /readyz): %w", u, err)
		}
	}
	return runAll(ctx, cfg, rep, dials, ctl, prog, nil)
}

// launch starts the server command and waits until it is ready.
func launch(ctx context.Context, cfg Config, ctl *http.Client) (*serverProc, func(), error) {
	log, err := openLog(cfg.Out, "server.log")
	if err != nil {
		return nil, nil, err
	}
	srv, err := startServer(cfg.ServerCmd, log)
	if err != nil {
		log.Close()
		return nil, nil, err
	}
	stop := func() {
		srv.stop()
		log.Close()
	}
	if _, err := waitReadiness(ctx, ctl, cfg.URL, true, 100*time.Millisecond, 30*time.Second); err != nil {
		stop()
		return nil, nil, fmt.Errorf("chatload: the server from --server-cmd is not ready at %s: %w", cfg.URL, err)
	}
	return srv, stop, nil
}

// runAll runs each user count in turn.
func runAll(ctx context.Context, cfg Config, rep Report, dials *dialers, ctl *http.Client, prog *progress, srv *serverProc) (Report, error) {
	newAuthority := func(base string) *authority {
		a := &authority{base: strings.TrimRight(base, "/"), http: ctl, now: time.Now}
		if cfg.JWTSecret != "" {
			a.secret = []byte(cfg.JWTSecret)
		}
		return a
	}
	// Dev users log in at their own node: dev-mode nodes need not share
	// a secret.
	var auths []*authority
	for _, u := range cfg.servers() {
		auths = append(auths, newAuthority(u))
	}
	admin := &adminToken{a: newAuthority(cfg.URL)}
	for _, n := range cfg.Users {
		if cfg.Level != "" {
			if err := admin.setLevel(ctx, ctl, cfg.URL, cfg.Level); err != nil {
				return rep, fmt.Errorf("chatload: %w", err)
			}
		}
		res := runOnce(ctx, cfg, n, auths, admin, dials, ctl, prog, srv)
		rep.Runs = append(rep.Runs, res)
		for _, f := range res.Failures {
			rep.Failures = append(rep.Failures, fmt.Sprintf("%s, %d users: %s", cfg.Workload, n, f))
		}
		for _, w := range res.Warnings {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("%s, %d users: %s", cfg.Workload, n, w))
		}
		if ctx.Err() != nil {
			rep.Failures = append(rep.Failures, "stopped early: "+context.Cause(ctx).Error())
		}
		if err := rep.write(cfg.Out); err != nil {
			return rep, err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return rep, nil
}

// runOnce runs the workload with n users: log in, connect, measure (or
// storm), drain, stop, and check.
func runOnce(ctx context.Context, cfg Config, n int, auths []*authority, admin *adminToken, dials *dialers,
	ctl *http.Client, prog *progress, srv *serverProc) RunResult {
	r := newRun(cfg, n, auths, dials, prog)
	mon := newMonitor(r, ctl, admin)
	debug.FreeOSMemory() // RSS figures count live memory, not garbage awaiting collection
	m := measures{baseline: scrapeAll(ctx, ctl, cfg.servers()), selfBaseline: selfRSS()}
	monCtx, stopMon := context.WithCancel(ctx)
	var monWG sync.WaitGroup
	monWG.Add(1)
	go func() {
		defer monWG.Done()
		mon.loop(monCtx)
	}()
	clientCtx, stopClients := context.WithCancel(ctx)
	finish := func() {
		stopMon()
		monWG.Wait()
		r.stop(stopClients)
	}
	if err := r.prefetch(ctx); err != nil {
		finish()
		res := r.result(m, nil, mon.timeline(), nil)
		res.Failures = append(res.Failures, "dev login: "+err.Error())
		return res
	}
	m.connectAll = r.connect(ctx, clientCtx)
	debug.FreeOSMemory()
	m.connected, m.selfConnected = scrapeAll(ctx, ctl, cfg.servers()), selfRSS()
	prog.say("[%s %du] %d of %d subscribed in %v", cfg.Workload, n, r.cnt.subscribed.Load(), n, m.connectAll.Round(time.Millisecond))

	start, d0, s0, b0 := time.Now(), r.cnt.deliveries.Load(), r.cnt.sends.Load(), dials.rx.Load()
	var storm *StormResult
	if cfg.Workload == Storm {
		storm = r.storm(ctx, clientCtx, srv, ctl)
	} else {
		r.hold(ctx, clientCtx)
	}
	m.measured = time.Since(start)
	m.deliveries, m.sends, m.received = r.cnt.deliveries.Load()-d0, r.cnt.sends.Load()-s0, dials.rx.Load()-b0
	m.takeovers, m.inflated = dials.wsz.Negotiated.Load(), dials.wsz.Inflated.Load()
	if cfg.Workload != Storm { // a storm's server is another process by now
		m.held = scrapeAll(ctx, ctl, cfg.servers())
	}

	var missing []string
	m.heads, missing, m.split = r.heads(ctx)
	m.drain = r.drain(ctx, m.heads)
	if cfg.Recover > 0 && cfg.Workload != Storm {
		m.recovery = r.recover(ctx, ctl)
	}
	if st, err := admin.status(ctx, ctl, cfg.URL); err == nil {
		m.admin = &st
	}
	finish()
	res := r.result(m, storm, mon.timeline(), missing)
	prog.say("[%s %du] done: p99 %s, %d lost, %d duplicated, error rate %.2f%%", cfg.Workload, n,
		msText(res.Latency.P99MS), res.Check.Lost, res.Check.Duplicated+res.Check.ClientDuplicates, res.ErrorRate*100)
	return res
}

// measures are what runOnce gathers for the result.
type measures struct {
	baseline, connected, held   reading // held: at the end of the measured phase
	selfBaseline, selfConnected uint64
	connectAll, measured, drain time.Duration
	deliveries, sends           uint64
	received                    uint64 // bytes the clients read from the server over the measured phase
	takeovers, inflated         int64  // WebSocket connections granted context takeover, and messages inflated with it, in the whole run
	heads                       map[string]uint64
	split                       []string // rooms whose nodes disagree on the head
	admin                       *adminStatus
	recovery                    *Recovery
}

// settings summarizes cfg for the report.
func settings(cfg Config, sourceIPs int) Settings {
	s := Settings{Workload: cfg.Workload, RoomSize: cfg.RoomSize, Tiers: map[string]int{}, Pinned: cfg.PinTier, Compress: cfg.Compress,
		Rate: cfg.Rate, TotalRate: cfg.TotalRate, MsgSize: cfg.MsgSize, ReadEveryMS: cfg.ReadEvery.Milliseconds(),
		TypingShare: cfg.TypingShare, DurationS: cfg.Duration.Seconds(), Auth: "dev login", SourceIPs: sourceIPs,
		Nodes: len(cfg.servers())}
	if cfg.JWTSecret != "" {
		s.Auth = "HS256"
	}
	if cfg.Workload == Broadcast || s.RoomSize <= 0 {
		s.RoomSize = slicesMax(cfg.Users)
	}
	s.Senders = cfg.senders(slicesMax(cfg.Users))
	for _, t := range cfg.Tiers {
		s.Tiers[t.Tier] += t.Weight
	}
	return s
}

func slicesMax(v []int) int {
	m := 0
	for _, x := range v {
		m = max(m, x)
	}
	return m
}

// fdNeed estimates the file descriptors the largest run needs: one per
// WebSocket client, two per SSE or poll client (the stream or the held
// poll, and a send or read in flight), and some to spare.
func fdNeed(cfg Config) uint64 {
	n := slicesMax(cfg.Users)
	cycle := tierCycle(cfg.Tiers)
	need := 256
	for i := range n {
		need++
		if cycle[i%len(cycle)] != tierNames[0] {
			need++
		}
	}
	return uint64(need)
}
