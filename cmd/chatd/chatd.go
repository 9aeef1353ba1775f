package main

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/core/files"
	"github.com/chatd/chatd/degrade"
	"github.com/chatd/chatd/featureflags"
	"github.com/chatd/chatd/featureflags/rollout"
	"github.com/chatd/chatd/transports/httpapi"
	"github.com/chatd/chatd/transports/httpx"
	"github.com/chatd/chatd/transports/node"
	"github.com/chatd/chatd/web"
)

// Main is the chatd program: flags in, a running server out. The
// end-to-end tests use it as it is.
type Main struct {
	Config Config
	Stdout io.Writer // the ready line and logs; os.Stdout
	Stderr io.Writer // os.Stderr

	// Set by Run.
	Addr net.Addr // the bound listen address
	Hub  *core.Hub

	log       *slog.Logger
	engine    engine
	files     files.Storage // nil without file sharing; closed after the engine
	node      *node.Node
	api       *httpapi.Server
	ln        *httpx.Listener // the connection caps around the bound listener
	http      *http.Server
	tls       *tls.Config   // the served TLS settings; nil: plain HTTP. Set by Run.
	served    chan struct{} // closed when Serve has returned
	serveErr  error         // set before served closes
	closeOnce sync.Once
	closeErr  error
	bgCancel  context.CancelFunc
	bgCtx     context.Context
	bgWG      sync.WaitGroup
	debug     *debugServer // --debug-addr; nil when off
}

// background runs fn until Close.
func (m *Main) background(fn func(ctx context.Context)) {
	if m.bgCancel == nil {
		ctx, cancel := context.WithCancel(context.Background())
		m.bgCancel = cancel
		m.bgCtx = ctx
	}
	m.bgWG.Add(1)
	go func() {
		defer m.bgWG.Done()
		fn(m.bgCtx)
	}()
}

// stopBackground ends what background started and waits for it.
func (m *Main) stopBackground() {
	if m.bgCancel != nil {
		m.bgCancel()
	}
	m.bgWG.Wait()
}

// NewMain returns a Main writing to the standard streams.
func NewMain() *Main { return &Main{Stdout: os.Stdout, Stderr: os.Stderr} }

// Run opens the engine, builds the node and serves until Close. It
// returns once the server is ready.
func (m *Main) Run(ctx context.Context) error {
	c := m.Config
	log := slog.New(slog.NewTextHandler(m.Stdout, &slog.HandlerOptions{Level: parseLevel(c.LogLevel)}))
	m.log = log
	verifier, tickets, err := m.authParts()
	if err != nil {
		return err
	}
	m.tls, err = c.tlsConfig()
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), newAnonRSSCollector())

	// Listen first: the node's id and advertised address take its port.
	ln, err := listen(ctx, c.Addr)
	if err != nil {
		return err
	}
	m.Addr = ln.Addr()
	id, addr := m.nodeIdentity(m.Addr)
	info := &node.InfoSource{}
	m.engine, err = m.openEngine(ctx, reg, id, addr, info)
	if err != nil {
		ln.Close()
		return err
	}
	fileSvc, fileStore, err := m.openFiles(ctx, m.engine.cluster != nil)
	if err != nil {
		ln.Close()
		m.engine.Close()
		return err
	}
	m.files = fileStore
	m.node = node.New(node.Config{
		Engine: m.engine.Engine, Verifier: verifier, Tickets: tickets,
		Hub: core.Config{Heartbeat: c.Heartbeat, MaxWriteDelay: zeroOff(c.MaxWriteDelay),
			RelievedWriteDelay: zeroOff(c.RelievedWriteDelay), WritersRunning: c.WritersRunning},
		Controller:  degrade.Config{EscalateAfter: c.EscalateAfter, TripAtOnce: c.TripAtOnce, ProbeBusy: c.ProbeBusy},
		PollLinger:  zeroOff(c.PollLinger),
		PollPark:    zeroOff(c.PollPark),
		PollMaxPace: zeroOff(c.PollMaxPace),
		PollQuiet:   zeroOff(c.PollQuiet),
		NoPollLane:  !c.PollLane,
		PollRunning: c.PollRunning,
		Degrade:     true, Signals: true, Cluster: m.engine.cluster,
		Origins: httpx.NewOrigins(c.AllowedOrigins), Web: web.Handler(),
		Info:   httpapi.Node{ID: id, Addr: addr, Engine: m.engine.name, Started: time.Now()},
		Logger: log, Metrics: reg,
		// Guarded rollout plans survive a restart next to the data (a
		// cluster keeps them in Redis instead).
		RolloutStore: rollout.NewFileStore(c.Data),
		Files:        fileSvc,
	})
	if fileSvc != nil {
		m.background(func(ctx context.Context) { sweepFiles(ctx, fileSvc, log) })
	}
	if c.QuietGC > 0 {
		m.background(newQuietGC(c.QuietGC, m.node.Hub.UsersAtStart() > 0).run)
	}
	info.Set(m.node)
	m.Hub = m.node.Hub
	m.api = m.node.API
	if c.Flags != "" {
		// On a cluster the file's state goes to every node (node.FlagTarget).
		src := &featureflags.FileSource{Path: c.Flags, Target: m.node.FlagTarget(), Logger: log}
		if err := src.Load(); err != nil {
			_ = m.node.Close(context.Background())
			ln.Close()
			m.engine.Close()
			return fmt.Errorf("--flags: %w", err)
		}
		m.background(func(ctx context.Context) { _ = src.Run(ctx) })
	}
	m.http = m.httpServer(ln, reg)
	if m.tls != nil {
		useTLS(m.http, m.tls.Clone()) // net/http adds to its copy while it serves
		m.logTLS(time.Now())
	}
	if m.node.Lane != nil {
		m.node.Lane.Attach(m.http) // node.Close closes it
	}
	m.served = make(chan struct{})
	go func() {
		err := m.serve()
		if !errors.Is(err, http.ErrServerClosed) {
			m.serveErr = err
		}
		close(m.served)
	}()
	if c.DebugAddr != "" {
		d, err := startDebug(c.DebugAddr, log)
		if err != nil {
			log.Warn("debug listener not started", "err", err)
		} else {
			m.debug = d
			log.Info("profiles served", "url", "http://"+d.Addr().String()+"/debug/pprof/")
		}
	}
	m.api.SetReady(true)
	mode := "configured keys"
	if verifier.DevMode() {
		mode = "dev mode: POST /v1/dev/login issues tokens"
	}
	where := []any{"data", c.Data}
	if m.engine.cluster != nil {
		where = []any{"node", id, "advertise", addr}
	}
	log.Info("chatd ready", append([]any{"url", m.scheme() + "://" + displayAddr(m.Addr), "engine", m.engine.name, "auth", mode, "gomaxprocs", runtime.GOMAXPROCS(0)}, where...)...)
	return nil
}

// authParts builds the token verifier and the ticket issuer from flags.
func (m *Main) authParts() (*auth.Verifier, *auth.Tickets, error) {
	c := m.Config
	cfg := auth.Config{Issuer: c.JWTIssuer, Audience: c.JWTAudience}
	if c.JWTSecret != "" {
		cfg.HMACSecret = []byte(c.JWTSecret)
	}
	if c.JWTPublicKey != "" {
		pem, err := os.ReadFile(c.JWTPublicKey)
		if err != nil {
			return nil, nil, fmt.Errorf("--jwt-public-key: %w", err)
		}
		cfg.PublicKeyPEM = pem
	}
	v, err := auth.NewVerifier(cfg)
	if err != nil {
		return nil, nil, err
	}
	var key []byte
	switch {
	case c.TicketSecret != "":
		k := sha256.Sum256([]byte(c.TicketSecret))
		key = k[:]
	case c.JWTSecret != "":
		key = auth.DeriveTicketKey([]byte(c.JWTSecret))
	}
	return v, auth.NewTickets(key, c.TicketTTL, nil), nil
}

// Wait blocks until ctx ends (a signal) or the HTTP server fails; it
// returns the server's error, if any.
func (m *Main) Wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case <-m.served:
		return m.serveErr
	}
}

// Close drains in the fixed order: stop admitting (not ready), tell
// sessions to go with jittered reconnect hints, stop the HTTP server, then
// flush and close the engine. It is idempotent.
func (m *Main) Close() error {
	m.closeOnce.Do(func() {
		if m.http == nil {
			return
		}
		m.api.SetReady(false)
		m.debug.Close()
		m.stopBackground()
		ctx, cancel := context.WithTimeout(context.Background(), m.Config.DrainTimeout)
		defer cancel()
		// A client too slow to take its goodbye must not turn a drain into a
		// failed exit: a drain that runs out of time is logged, and the
		// remaining connections are cut.
		if err := m.node.Close(ctx); err != nil {
			m.log.Warn("drain timed out; closing remaining sessions", "err", err)
		}
		if err := m.http.Shutdown(ctx); err != nil {
			m.log.Warn("http shutdown timed out", "err", err)
			_ = m.http.Close()
		}
		<-m.served
		var errs []error
		if m.serveErr != nil {
			errs = append(errs, m.serveErr)
		}
		if err := m.engine.Close(); err != nil {
			errs = append(errs, err)
		}
		if m.files != nil {
			if err := m.files.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		m.closeErr = errors.Join(errs...)
		m.log.Info("chatd stopped", "err", m.closeErr)
	})
	return m.closeErr
}

func displayAddr(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}
