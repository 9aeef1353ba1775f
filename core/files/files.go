package files

import (
	"context"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/core/protocol"
)

// File is a stored file as clients see it: the answer to an upload, and
// what a message that carries files embeds, one object per file.
type File struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Size     int64  `json:"size"`
	Type     string `json:"type"`
	URL      string `json:"url"`
	ThumbURL string `json:"thumb_url,omitempty"`
	Width    int    `json:"width,omitempty"`
	Height   int    `json:"height,omitempty"`
}

// Authorizer decides who may upload to a room and who may download what
// was sent there. The hub implements it with the same rules as sends and
// joins; a nil Authorizer in Config uses auth.Identity.CanAccess for both.
// Each method returns nil to allow, or an error, normally forbidden.
type Authorizer interface {
	CanWrite(ctx context.Context, who auth.Identity, room string) error
	CanRead(ctx context.Context, who auth.Identity, room string) error
}

// Config configures a Service. The zero value is valid; each field says
// its default.
type Config struct {
	// MaxSize is the largest file accepted, in bytes. 0: DefaultMaxSize.
	MaxSize int64
	// Quota is how many bytes of files one user may have stored at once.
	// 0: DefaultQuota; negative: no quota.
	Quota int64
	// Rate is how many uploads per second one user may start, on one
	// node, with bursts of Burst. 0: DefaultRate; negative: no limit.
	Rate rate.Limit
	// Burst is the rate limiter's burst. 0: DefaultBurst.
	Burst int
	// MaxPixels is the largest image, in pixels (width × height), that is
	// decoded for a thumbnail; a larger one is refused, too_large, before
	// any pixel is decoded. 0: DefaultMaxPixels.
	MaxPixels int64
	// MaxSide is the longest side, in pixels, an image may have.
	// 0: DefaultMaxSide.
	MaxSide int
	// ThumbSize is the box a thumbnail fits in, in pixels. 0: DefaultThumbSize.
	ThumbSize int
	// Decoders is how many images one node decodes at once; each holds
	// up to MaxPixels × 8 bytes while it works. 0: 1.
	Decoders int
	// MaxPerMessage is how many files one message may carry.
	// 0: DefaultMaxPerMessage.
	MaxPerMessage int
	// Grace is how long an upload may wait to be sent in a message. Past
	// it Resolve refuses it, and Sweep removes it SweepMargin later.
	// 0: DefaultGrace.
	Grace time.Duration
	// URLPrefix is where the files are served, for File.URL. 0: "/v1/files".
	URLPrefix string
	// Authorizer checks permissions. nil: auth.Identity.CanAccess.
	Authorizer Authorizer
	// Now is the clock. nil: time.Now.
	Now func() time.Time
}

// Defaults for Config.
const (
	DefaultMaxSize       = 25 << 20
	DefaultQuota         = 1 << 30
	DefaultRate          = rate.Limit(0.2) // 12 a minute
	DefaultBurst         = 10
	DefaultMaxPixels     = 40_000_000
	DefaultMaxSide       = 16384
	DefaultThumbSize     = 320
	DefaultMaxPerMessage = 10
	DefaultGrace         = 24 * time.Hour
	// SweepMargin is how long after Grace Sweep waits before it removes
	// an upload never sent, so that a Resolve that began before Grace
	// has long finished marking the file.
	SweepMargin = time.Hour
)

func (c Config) withDefaults() Config {
	def := func(v *int64, d int64) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.MaxSize, DefaultMaxSize)
	def(&c.Quota, DefaultQuota)
	def(&c.MaxPixels, DefaultMaxPixels)
	if c.Rate == 0 {
		c.Rate = DefaultRate
	}
	if c.Burst <= 0 {
		c.Burst = DefaultBurst
	}
	if c.MaxSide <= 0 {
		c.MaxSide = DefaultMaxSide
	}
	if c.ThumbSize <= 0 {
		c.ThumbSize = DefaultThumbSize
	}
	if c.Decoders <= 0 {
		c.Decoders = 1
	}
	if c.MaxPerMessage <= 0 {
		c.MaxPerMessage = DefaultMaxPerMessage
	}
	if c.Grace <= 0 {
		c.Grace = DefaultGrace
	}
	if c.URLPrefix == "" {
		c.URLPrefix = "/v1/files"
	}
	if c.Authorizer == nil {
		c.Authorizer = identityAuthorizer{}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// identityAuthorizer is the default Authorizer: the token's own rules.
type identityAuthorizer struct{}

func (identityAuthorizer) CanWrite(_ context.Context, who auth.Identity, room string) error {
	return who.CanAccess(room)
}

func (identityAuthorizer) CanRead(_ context.Context, who auth.Identity, room string) error {
	return who.CanAccess(room)
}

// Service stores, checks, serves and removes files. It is safe for
// concurrent use, and any number of Services (on any number of nodes) may
// share one Storage.
type Service struct {
	cfg   Config         // Static after construction.
	store Storage        // Static after construction.
	rates *rateLimits    // Safe for concurrent use.
	quota flights        // uploads in progress; safe for concurrent use.
	sem   chan struct{}  // Holds one token per image being decoded.
	stats serviceCounter // Atomic counters.
}

// New returns a Service on store. The Service does not own store: the
// caller closes it after the last use.
func New(store Storage, cfg Config) *Service {
	if store == nil {
		panic("files: New with a nil Storage")
	}
	cfg = cfg.withDefaults()
	return &Service{
		cfg:   cfg,
		store: store,
		rates: newRateLimits(cfg.Rate, cfg.Burst),
		sem:   make(chan struct{}, cfg.Decoders),
	}
}

// Config returns the configuration in force, defaults filled in.
func (s *Service) Config() Config { return s.cfg }

// Stats counts what a Service did since it started.
type Stats struct {
	Uploads   int64 // files stored
	Bytes     int64 // bytes of the files stored
	TooLarge  int64 // uploads refused for size or quota
	Limited   int64 // uploads refused by the rate limit
	BadImages int64 // images refused: too many pixels, or not decodable
	Decodes   int64 // images decoded (for a thumbnail)
	Deleted   int64 // files removed by Delete, Prune or Sweep
}

type serviceCounter struct {
	uploads, bytes, tooLarge, limited, badImages, decodes, deleted atomic.Int64
}

// Stats returns the counters.
func (s *Service) Stats() Stats {
	c := &s.stats
	return Stats{
		Uploads: c.uploads.Load(), Bytes: c.bytes.Load(), TooLarge: c.tooLarge.Load(),
		Limited: c.limited.Load(), BadImages: c.badImages.Load(), Decodes: c.decodes.Load(),
		Deleted: c.deleted.Load(),
	}
}

// errNoFile answers an id that names no file.
var errNoFile = protocol.Errorf(protocol.CodeNotFound, "no such file")
