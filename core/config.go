package core

import (
	"log/slog"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/core/protocol"
)

// Verifier turns a bearer token into an identity. *auth.Verifier is one.
type Verifier interface {
	Verify(token string) (auth.Identity, error)
}

// FeatureGate reports whether feature is on for user. The degradation
// controller and the feature flags supply it; nil means everything is on.
type FeatureGate func(user, feature string) bool

// Feature names the hub consults.
const (
	FeatureReadReceipts = "read_receipts"
	FeatureTyping       = "typing"
	FeaturePresence     = "presence"
	// FeatureCompression is asked by transports, not the hub: compress
	// what is sent to this user (permessage-deflate, gzip).
	FeatureCompression = "compression"
	// FeatureFiles is asked by the file upload endpoint: may this user
	// upload files now.
	FeatureFiles = "files"
)

// Config configures a Hub. The zero value is valid; each field's comment
// gives its default.
type Config struct {
	MaxTextLen         int     // characters per message; 4096
	SendRate           float64 // sends per second per user; 10
	SendBurst          int     // send burst per user; 20
	MaxConnsPerUser    int     // open sessions per user; 20
	MaxRoomsPerSession int     // joined rooms per session; 128
	QueueFrames        int     // frames queued per session before it is slow; 1024
	QueueBytes         int     // bytes queued per session before it is slow; 1 MiB; at most 1 GiB
	ReplayPage         int     // messages read per store call when catching up; 256
	// ReplayWindow is how many bytes of replayed history a catching-up
	// session may have queued and not yet written; the replay reads on as
	// the writer drains. 256 KiB.
	ReplayWindow int
	// ReplayBudget bounds the replayed bytes queued on the whole node:
	// ReplayBudget/ReplayWindow catch-ups run at once and the next waits
	// its turn. 64 MiB (256 concurrent replays).
	ReplayBudget int
	// RecentFrames and RecentBytes bound the newest published entries a
	// room keeps encoded in memory, so that a session resuming from a
	// recent position is replayed without reading the store (recent.go):
	// 256 entries and 64 KiB per room (encoded bytes and frames);
	// RecentFrames negative: none. RecentBudget bounds them on the whole
	// node: 64 MiB.
	RecentFrames int
	RecentBytes  int
	RecentBudget int
	// PresenceInterval is how often coalesced presence changes are sent;
	// 1s.
	PresenceInterval time.Duration
	// PresenceMaxMembers is the most users online in a room for which
	// presence is sent per user; above it a room gets the count. 100.
	PresenceMaxMembers int
	// PresenceCountPace is how many members a room's count may reach each
	// PresenceInterval. A bigger room gets its count less often: two
	// counts are at least PresenceInterval × online / PresenceCountPace
	// apart, and at most ten intervals while it moves, so that a room of 10,000
	// filling up does not cost every member a write each pass (10,000
	// writes a second, a sixth of the node while 10,000 clients
	// connected). 1000; negative: every pass.
	PresenceCountPace int
	// Behind, if set, says whether the node is behind now (chatd: the
	// scheduler's latency, the signal that paces polls). While it is,
	// the presence pass is put off, for at most PresenceMaxDelay: changes
	// pile up and go out in one envelope a room once the node has caught
	// up. In a reconnect storm every member of a room filling up got an
	// envelope each pass, a write each, in the same second as the
	// reconnects they announce. nil: never behind.
	Behind func() bool
	// PresenceMaxDelay bounds how long presence passes are skipped in a
	// row while the node is behind, counted from the first skipped, so
	// that a change is late by at most this and one PresenceInterval; 5s.
	PresenceMaxDelay time.Duration
	ReadRate         float64 // read positions per second per user; 20
	ReadBurst        int     // read position burst per user; 40
	// ReadFlush is how often coalesced read positions are stored and
	// their receipts fanned out: only the highest position per user and
	// room in each interval is written. 250ms.
	ReadFlush    time.Duration
	HistoryLimit int           // default history page; 50 (max 200)
	Heartbeat    time.Duration // server ping interval; 15s
	// MaxWriteDelay bounds how long a woken writer waits, while the node
	// is behind, to take more frames in one write: a tenth of the recent
	// delivery latency, at most this; none while that latency is under
	// 10 ms (see Relieving for the wait while the node relieves load). A
	// queue a quarter full, or a close, ends the wait. 50ms; negative:
	// never, whether relieving or not.
	MaxWriteDelay time.Duration
	// Relieving, if set, reports whether the node is relieving load (the
	// degradation level is 1 or more). While it does, a woken writer
	// waits a quarter of the recent delivery latency, at least half of
	// RelievedWriteDelay and at most RelievedWriteDelay, however low that
	// latency: the node trades up to that much latency for fewer, fuller
	// writes. nil: never.
	Relieving func() bool
	// RelievedWriteDelay bounds the write delay while Relieving reports
	// true. 1s; negative: MaxWriteDelay's rule holds then too.
	RelievedWriteDelay time.Duration
	// WritersRunning bounds the session writers that write at once: a
	// writer with a batch waits, parked, for one of this many slots, and
	// takes its queue once it has one, so that thousands of writers
	// woken by a busy room do not stand in the run queue ahead of the
	// reads, commits and fan-out that every message waits for. A writer
	// keeps its slot through its transport's Write when the transport
	// is a SlotWriter, which gives it back before it would wait for a
	// slow client; otherwise it gives it back before Write. Writers of
	// an InlineWriter (polls) take none, nor do any while Relieving
	// reports true. 0: one per CPU the process may use (its affinity, at
	// most GOMAXPROCS); negative: no bound.
	WritersRunning int
	// WriterLinger is how long a session's writer with nothing to write
	// stays parked before it exits, so that steady traffic wakes it rather
	// than spawning one per batch; a writer whose last batch was
	// heartbeats only exits at once. 250ms.
	WriterLinger time.Duration
	// EventDelay is how long a room's typing, receipt and presence frames
	// may wait in a session's queue for a frame that must go at once (a
	// message, a reply) to go out in the same write, rather than waking
	// the writer for a write of their own. In a busy room they ride with
	// the next message; in a quiet one they are that much late. 200ms;
	// negative: never wait.
	EventDelay     time.Duration
	TypingInterval time.Duration // minimum gap between fanned-out typing events per user and room; 1s
	ShutdownJitter time.Duration // reconnect hints on shutdown spread over this; 5s

	Verifier Verifier    // for in-band refresh; nil rejects refresh
	Features FeatureGate // nil: all features on
	// Greeting, if set, gives the control envelope a session that asks
	// for one (SessionOptions.Greet) gets first: the degradation offer,
	// already encoded. The bytes may be shared by every session and are
	// never modified; a reconnect storm then encodes no offer per session.
	Greeting func(user string) (data []byte, ok bool)
	// Observer, if set, sees per-user outcomes: sessions opened and
	// closed, error replies, deliveries. nil: none.
	Observer Observer
	// Files resolves the file ids of a send into attachments; nil: a
	// send with files is bad_request.
	Files FileResolver
	// OnDelete, if set, is told of files no retained message references
	// any more: a deleted message's, and those of messages that retention
	// pruned, once each, after the removal is durable. It runs on the
	// engine's goroutine (the commit path) and must not block: queue the
	// removal.
	OnDelete func(room string, files []protocol.File)
	Now      func() time.Time      // time.Now
	Logger   *slog.Logger          // slog.Default()
	Metrics  prometheus.Registerer // nil: a private registry
}

func (c Config) withDefaults() Config {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.MaxTextLen, 4096)
	def(&c.SendBurst, 20)
	def(&c.MaxConnsPerUser, 20)
	def(&c.MaxRoomsPerSession, 128)
	def(&c.QueueFrames, 1024)
	def(&c.QueueBytes, 1<<20)
	c.QueueBytes = min(c.QueueBytes, 1<<30) // Session.queued is 32 bits
	def(&c.ReplayPage, 256)
	def(&c.ReplayWindow, 256<<10)
	c.ReplayWindow = min(c.ReplayWindow, 1<<30) // it bounds a queue too (Session.queued is 32 bits)
	def(&c.ReplayBudget, 64<<20)
	if c.RecentFrames == 0 {
		c.RecentFrames = 256
	}
	def(&c.RecentBytes, 64<<10)
	def(&c.RecentBudget, 64<<20)
	def(&c.ReadBurst, 40)
	def(&c.PresenceMaxMembers, 100)
	def(&c.PresenceCountPace, 1000)
	if c.PresenceInterval <= 0 {
		c.PresenceInterval = time.Second
	}
	if c.PresenceMaxDelay <= 0 {
		c.PresenceMaxDelay = 5 * time.Second
	}
	if c.ReadRate <= 0 {
		c.ReadRate = 20
	}
	if c.ReadFlush <= 0 {
		c.ReadFlush = 250 * time.Millisecond
	}
	def(&c.HistoryLimit, 50)
	if c.SendRate <= 0 {
		c.SendRate = 10
	}
	if c.Heartbeat <= 0 {
		c.Heartbeat = 15 * time.Second
	}
	if c.MaxWriteDelay == 0 {
		c.MaxWriteDelay = 50 * time.Millisecond
	}
	if c.RelievedWriteDelay == 0 {
		c.RelievedWriteDelay = time.Second
	}
	if c.WritersRunning == 0 {
		c.WritersRunning = max(1, min(runtime.NumCPU(), runtime.GOMAXPROCS(0)))
	}
	if c.WriterLinger <= 0 {
		c.WriterLinger = 250 * time.Millisecond
	}
	if c.EventDelay == 0 {
		c.EventDelay = 200 * time.Millisecond
	}
	if c.TypingInterval <= 0 {
		c.TypingInterval = time.Second
	}
	if c.ShutdownJitter <= 0 {
		c.ShutdownJitter = 5 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Metrics == nil {
		c.Metrics = prometheus.NewRegistry()
	}
	if c.Features == nil {
		c.Features = func(string, string) bool { return true }
	}
	return c
}
