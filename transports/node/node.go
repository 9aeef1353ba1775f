// Package node builds one chatd node: the hub over an engine, the
// degradation controller and policy, the feature flags, the tier mover,
// the three transports and the router, and, on an engine shared by
// several nodes, the bridge that makes the level and the flags
// cluster-wide (cluster.go). It is the one wiring path: the server
// (cmd/chatd) and every test harness build their graph here, so what the
// tests run is what ships. The caller picks the engine and owns the
// listener and the http.Server.
package node

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/core/files"
	"github.com/chatd/chatd/degrade"
	"github.com/chatd/chatd/featureflags"
	"github.com/chatd/chatd/featureflags/rollout"
	"github.com/chatd/chatd/transports/httpapi"
	"github.com/chatd/chatd/transports/httpx"
	"github.com/chatd/chatd/transports/poll"
	"github.com/chatd/chatd/transports/sse"
	"github.com/chatd/chatd/transports/ws"
)

// Config is what a node is built from. Engine, Verifier and Tickets are
// required; every other zero value is a working default.
type Config struct {
	Engine   core.Engine
	Verifier *auth.Verifier
	Tickets  *auth.Tickets

	// Hub tunes the hub. Verifier, Logger and Metrics are filled in; with
	// Degrade, so are Features and Greeting.
	Hub core.Config

	// Degrade wires degradation as the server runs it: the policy decides
	// offers and features per user, sessions are greeted with a control
	// envelope, upgrades and streams are gated by the level, poll answers
	// carry the offer, level and flag changes move live sessions, and the
	// admin API is served. Without it every tier and feature is on and no
	// control envelope is sent (what most behaviour tests want).
	Degrade bool
	// Signals feeds the controller the default load signals over
	// Capacity (auto mode). Without it the level moves only by hand.
	Signals  bool
	Capacity degrade.Capacity
	// Controller tunes the controller; Logger and Metrics are filled in.
	Controller degrade.Config
	// Flags is the flag store; nil: a new one at the registry's defaults.
	Flags *featureflags.Store
	// MoveWindow spreads tier moves after a level change; 10s.
	MoveWindow time.Duration

	Origins      *httpx.Origins // nil: same-origin only
	PollHold     time.Duration  // the poll default (25s)
	PollInterval time.Duration  // the short-poll interval (5s)
	PollLinger   time.Duration  // see poll.Config.Linger (0: its default)
	PollPark     time.Duration  // see poll.Config.Park (0: its default)
	PollQuiet    time.Duration  // see poll.Config.Quiet (0: its default)
	// PollMaxPace is the most a busy poll client's answers are spaced
	// while the node is behind (poll.Pacer); 0: poll.DefaultMaxPace;
	// negative: never. The pacer's signal also puts presence off while
	// the node is behind (core.Config.Behind), unless Hub.Behind is set;
	// with pacing off, presence is never put off.
	PollMaxPace time.Duration
	// NoPollLane serves every request through net/http: no httpx.Lane
	// takes busy poll clients' connections over, nor holds idle REST and
	// page connections (see Node.Lane).
	NoPollLane bool
	// PollRunning bounds the polls that do their work at once (see
	// poll.Config.Running); 0: one per CPU; negative: no bound.
	PollRunning int
	SSERetry    time.Duration // the SSE retry: hint (2s)
	Web         http.Handler  // the pages at /; nil: none
	Info        httpapi.Node  // this node, for the admin status
	// Cluster is the state shared with the other nodes of the engine
	// (the Redis engine's, through a small adapter: see Backend). With it
	// the level and the flags are cluster-wide, the admin status lists
	// every live node, its history and audit are the cluster's, and
	// /readyz follows the backend's Health. It needs Degrade. nil: this
	// node alone.
	Cluster Backend
	// ClusterSync is how often the node re-reads the shared state and the
	// live nodes, to catch what it missed; 1s.
	ClusterSync time.Duration
	Logger      *slog.Logger // slog.Default()
	// Metrics is the registry /metrics serves; nil: a private one.
	Metrics *prometheus.Registry
	// RolloutStore keeps the guarded rollout plans across restarts (with
	// Degrade); nil: memory only. On a cluster the plans are in the
	// shared state instead.
	RolloutStore rollout.PlanStore
	// Files is the file store behind POST /v1/files and GET
	// /v1/files/{id}; nil: no file sharing. On a cluster every node must
	// reach the same store.
	Files *files.Service
	// RolloutTick is how often the rollout plans are judged and stepped;
	// 10s.
	RolloutTick time.Duration
}

// Node is one built node. Its fields are static after New.
type Node struct {
	Hub        *core.Hub
	Controller *degrade.Controller // nil without Config.Degrade
	Policy     *degrade.Policy     // nil without Config.Degrade
	Flags      *featureflags.Store
	Mover      *degrade.Mover   // nil without Config.Degrade
	Rollouts   *rollout.Manager // nil without Config.Degrade
	API        *httpapi.Server
	// Lane takes busy poll clients' connections over from net/http, and
	// holds idle kept-alive REST and page connections, serving the REST
	// reads of httpapi.LaneRoutes on them (httpx.Lane.Keep); nil with
	// Config.NoPollLane. It serves nothing until the server that serves
	// Handler attaches it (Lane.Attach); Close closes it.
	Lane *httpx.Lane

	pacer  *poll.Pacer // nil with pacing off
	bridge *bridge     // nil without Config.Cluster
	reaper *fileReaper // nil without Config.Files
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// New builds the node and starts its background work (the controller,
// the mover). It is not ready until API.SetReady(true). Close stops it.
func New(cfg Config) *Node {
	if cfg.Engine == nil || cfg.Verifier == nil || cfg.Tickets == nil {
		panic("node: New needs an Engine, a Verifier and Tickets")
	}
	if cfg.Cluster != nil && !cfg.Degrade {
		panic("node: a Cluster needs Degrade")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = prometheus.NewRegistry()
	}
	log := cfg.Logger
	n := &Node{Flags: cfg.Flags}
	if n.Flags == nil {
		n.Flags = featureflags.NewStore(featureflags.Config{Logger: log})
	}
	hubCfg := cfg.Hub
	hubCfg.Verifier, hubCfg.Logger, hubCfg.Metrics = cfg.Verifier, log, cfg.Metrics
	if pace := cfg.PollMaxPace; pace >= 0 {
		if pace == 0 {
			pace = poll.DefaultMaxPace
		}
		n.pacer = poll.NewPacer(pace)
		if hubCfg.Behind == nil {
			hubCfg.Behind = n.pacer.Behind
		}
	}
	if cfg.Degrade {
		ctlCfg := cfg.Controller
		ctlCfg.Logger, ctlCfg.Metrics = log, cfg.Metrics
		if cfg.Signals && ctlCfg.Busy == nil {
			ctlCfg.Busy = degrade.ProcessBusy()
		}
		n.Controller = degrade.New(ctlCfg)
		n.Policy = &degrade.Policy{Controller: n.Controller, Flags: n.Flags,
			Transports: []string{ws.Name, sse.Name, poll.Name}, PollInterval: cfg.PollInterval}
		hubCfg.Features = n.Policy.FeatureOn
		if hubCfg.Relieving == nil {
			hubCfg.Relieving = n.Policy.Relieving
		}
		hubCfg.Greeting = func(user string) ([]byte, bool) { return n.Policy.ControlWire(user).Data, true }
	}
	var meter *rollout.Meter
	if cfg.Degrade {
		meter = &rollout.Meter{} // what the rollout guards judge by, fed by the hub
		if hubCfg.Observer == nil {
			hubCfg.Observer = meter
		}
	}
	if cfg.Files != nil {
		n.reaper = newFileReaper(cfg.Files, log)
		hubCfg.Files, hubCfg.OnDelete = fileResolver{cfg.Files}, n.reaper.onDelete
	}
	n.Hub = core.New(cfg.Engine, hubCfg)
	apiCfg := httpapi.Config{
		Hub: n.Hub, Verifier: cfg.Verifier, Tickets: cfg.Tickets, Origins: cfg.Origins, Logger: log,
		Metrics: promhttp.HandlerFor(cfg.Metrics, promhttp.HandlerOpts{}),
		Web:     cfg.Web, Policy: n.Policy, Flags: n.Flags, Node: cfg.Info,
		Transports: n.transports(cfg),
	}
	apiCfg.Lane = n.Lane // set by transports
	if cfg.Cluster != nil {
		n.bridge = newBridge(cfg.Cluster, n, cfg.ClusterSync, log)
		apiCfg.Cluster, apiCfg.Health = n.bridge, cfg.Cluster.Health
	}
	if cfg.Files != nil {
		apiCfg.Files = n.filesHandler(cfg.Files)
	}
	if cfg.Degrade {
		n.Rollouts = n.newRollouts(cfg, meter)
		apiCfg.Rollouts = n.Rollouts
	}
	n.API = httpapi.New(apiCfg)
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	if n.pacer != nil {
		n.wg.Go(func() { n.pacer.Run(ctx) })
	}
	if cfg.Degrade {
		if cfg.Signals {
			n.Controller.AddSignals(degrade.DefaultSignals(n.Hub, cfg.Capacity)...)
		}
		n.Mover = &degrade.Mover{Hub: n.Hub, Offer: n.Policy.Offer, Window: cfg.MoveWindow}
		n.wg.Go(func() { n.Controller.Run(ctx) })
		n.wg.Go(func() { moveOnChange(ctx, n.Controller, n.Flags, n.Mover) })
		// The plans are read before the node serves: a restarted node's
		// status lists them from its first request. Run's first tick, at
		// once, judges them and writes their flags.
		lctx, lcancel := context.WithTimeout(ctx, rolloutLoadTimeout)
		if err := n.Rollouts.Load(lctx); err != nil {
			log.Warn("rollout: plans not read at start; the first tick reads them", "err", err)
		}
		lcancel()
		n.wg.Go(func() { n.Rollouts.Run(ctx) })
	}
	if n.bridge != nil {
		n.wg.Go(func() { n.bridge.run(ctx) })
	}
	return n
}

// FlagTarget is where a flags file's states go: on a cluster, to every
// node through the shared state (a file state already shared is not
// shared again); else to this node's store.
func (n *Node) FlagTarget() featureflags.Target {
	if n.bridge != nil {
		return n.bridge
	}
	return n.Flags
}

// transports builds the three tier handlers.
func (n *Node) transports(cfg Config) map[string]http.Handler {
	log, hub := cfg.Logger, n.Hub
	authn := &httpx.Authenticator{Verifier: cfg.Verifier, Tickets: cfg.Tickets}
	wsCfg := ws.Config{Hub: hub, Auth: authn, Origins: cfg.Origins, Logger: log, Metrics: cfg.Metrics}
	sseCfg := sse.Config{Hub: hub, Auth: authn, Logger: log, Retry: cfg.SSERetry}
	pollCfg := poll.Config{Hub: hub, Auth: authn, Hold: cfg.PollHold, Interval: cfg.PollInterval, Linger: cfg.PollLinger, Park: cfg.PollPark, Quiet: cfg.PollQuiet,
		Running: cfg.PollRunning}
	if !cfg.NoPollLane {
		n.Lane = httpx.NewLane(append([]string{httpapi.Path(poll.Name)}, httpapi.LaneRoutes()...)...)
		pollCfg.Lane = n.Lane
		cfg.Metrics.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "chat_poll_lane_requests_total",
			Help: "Requests answered on a kept-alive connection taken over from net/http (httpx.Lane): polls, and the REST reads of httpapi.LaneRoutes.",
		}, func() float64 { return float64(n.Lane.Served()) }), prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "chat_poll_lane_returned_total",
			Help: "Connections a lane gave back to net/http for a request it does not serve.",
		}, func() float64 { return float64(n.Lane.Returned()) }), prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "chat_http_lane_kept_total",
			Help: "Kept-alive connections handed to the lane after a REST or page answer, to wait there for their next request (httpx.Lane.Keep).",
		}, func() float64 { return float64(n.Lane.Kept()) }))
	}
	if n.pacer != nil {
		pollCfg.Pace = n.pacer.Pace
		cfg.Metrics.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "chat_poll_pace_seconds",
			Help: "Least time now between two answers to one busy long-poll client (0 while the node keeps up; grows while goroutines wait 30 ms or more to run).",
		}, func() float64 { return n.pacer.Pace().Seconds() }))
	}
	if p := n.Policy; p != nil {
		wsCfg.Offered, sseCfg.Offered = p.Offers(ws.Name), p.Offers(sse.Name)
		pollCfg.Short = p.Short
		pollCfg.ControlWire = func(user string) ([]byte, uint64) {
			w := p.ControlWire(user)
			return w.Data, w.Tag
		}
		pollCfg.Level = func() int { return int(p.Level()) }
		// The compression flag, off from level 1: CPU is what a loaded
		// node runs short of first.
		compress := func(user string) bool { return p.FeatureOn(user, core.FeatureCompression) }
		wsCfg.Compress, sseCfg.Compress, pollCfg.Compress = compress, compress, compress
	}
	ph := poll.New(pollCfg)
	cfg.Metrics.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "chat_poll_parked_total",
		Help: "Held polls parked: taken from net/http to wait for news without a goroutine (--poll-park).",
	}, func() float64 { return float64(ph.Parks()) }), prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "chat_poll_park_overflows_total",
		Help: "Parked polls whose clients sent more than a request's worth while parked; their connections are not kept for the next poll.",
	}, func() float64 { return float64(ph.Overflows()) }), prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "chat_poll_sessions_opened_total",
		Help: "Polls that opened a session of their own: a client's first poll, or one that found no session kept from its last answer.",
	}, func() float64 { return float64(ph.Opened()) }))
	for i, stream := range []string{"new", "goes_on"} {
		cfg.Metrics.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "chat_poll_deflated_answers_total",
			Help:        "Poll answers sent deflated (deflate=), by whether each started a deflate stream or went on with the one of the client's last answer.",
			ConstLabels: prometheus.Labels{"stream": stream},
		}, func() float64 {
			started, wentOn := ph.Deflated()
			return float64([]uint64{started, wentOn}[i])
		}))
	}
	for i, found := range []string{"note", "query", "position"} {
		cfg.Metrics.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "chat_poll_sessions_resumed_total",
			Help:        "Polls that carried on with the session kept from their client's last answer, by how it was found: the note on the poll's connection, the query as it is, or its parsed position.",
			ConstLabels: prometheus.Labels{"found": found},
		}, func() float64 {
			byNote, byQuery, byPosition := ph.Resumed()
			return float64([]uint64{byNote, byQuery, byPosition}[i])
		}))
	}
	return map[string]http.Handler{ws.Name: ws.New(wsCfg), sse.Name: sse.New(sseCfg), poll.Name: ph}
}

// Handler returns the node's router.
func (n *Node) Handler() http.Handler { return n.API.Handler() }

// Close stops the node in the fixed order: not ready, background work
// stopped, then every session told to go (Hub.Shutdown, bounded by ctx).
// The caller then stops its HTTP server and closes the engine. It is
// idempotent; later calls return nil.
func (n *Node) Close(ctx context.Context) error {
	var err error
	n.once.Do(func() {
		n.API.SetReady(false)
		n.cancel()
		n.wg.Wait()
		err = n.Hub.Shutdown(ctx)
		if n.Lane != nil {
			n.Lane.Close(ctx) // after the sessions: their last answers go out first
		}
		if n.reaper != nil {
			n.reaper.stop()
		}
	})
	return err
}

// moveOnChange applies level and flag changes to live sessions until ctx
// ends or a subscription closes.
func moveOnChange(ctx context.Context, ctl *degrade.Controller, flags *featureflags.Store, mover *degrade.Mover) {
	levels, stopLevels := ctl.Subscribe()
	defer stopLevels()
	flagChanges, stopFlags := flags.Subscribe()
	defer stopFlags()
	for {
		select {
		case <-ctx.Done():
			return
		case ch, ok := <-levels:
			if !ok {
				return
			}
			if ch.From != ch.To {
				mover.Apply()
			}
		case _, ok := <-flagChanges:
			if !ok {
				return
			}
			mover.Apply()
		}
	}
}
