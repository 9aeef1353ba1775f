package client

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/chatd/chatd/core/protocol"
)

// State is what the caller can always see: which tier, whether it is
// connected, and why not.
type State struct {
	Transport string          // the tier in use or being tried; "" before the first
	Connected bool            // the tier delivered its first envelope and is live
	Reason    string          // why it is not connected (empty when connected)
	Attempt   int             // failed connect cycles in a row; 0 once connected
	Level     int             // the server's degradation level, from negotiate or control
	Features  map[string]bool // the features the server offers this user
}

// offer is the negotiate answer, updated by control envelopes.
type offer struct {
	Transports     []string        `json:"transports"`
	Level          int             `json:"level"`
	Features       map[string]bool `json:"features"`
	HeartbeatMS    int64           `json:"heartbeat_ms"`
	PollIntervalMS int64           `json:"poll_interval_ms"`
}

// Client is a chat client that keeps one connection to a chatd server
// over the best tier that works, and moves between tiers without losing or
// duplicating messages. Create it with New and start it with Run. All
// methods are safe for concurrent use.
type Client struct {
	cfg     Config       // Static after New.
	base    string       // cfg.URL without a trailing slash; static after New.
	http    *http.Client // Static after New.
	ownHTTP bool         // http is private: Run closes its idle connections. Static.

	events  chan protocol.Envelope // Events; closed when Run returns
	states  chan State             // States; the oldest is dropped when full
	moves   chan struct{}          // cap 1: SwitchTransport was called
	started atomic.Bool

	rndMu sync.Mutex // serializes cfg.Rand

	noJoinQuery atomic.Bool // a WebSocket dial was refused for the joins in its query: join by envelopes
	pollViaDo   atomic.Bool // a poll was redirected: polls go through http.Client.Do (doPoll)

	tokMu sync.Mutex
	token string // the latest Token answer; guarded by tokMu

	mu      sync.Mutex
	rooms   []string           // rooms followed, in join order; guarded by mu
	pos     map[string]uint64  // last seq delivered per room; guarded by mu
	state   State              // Guarded by mu.
	offer   offer              // the latest negotiate answer and control; guarded by mu
	control *protocol.Envelope // the last control envelope; guarded by mu
	link    *link              // the link Run is supervising; guarded by mu
	want    string             // the tier SwitchTransport asked for; guarded by mu
	queue   envQueue           // accepted, not yet handed to events; guarded by mu
	queued  chan struct{}      // cap 1: queue is not empty

	dups     uint64        // messages dropped as already delivered; guarded by mu
	connects atomic.Uint64 // links that went live

	rtt atomic.Int64 // the last send's round trip in ms, not reported yet; 0: none (see rtt.go)
	key string       // sent with every poll (X-Chat-Client); static after New
}

// Stats are a client's counters since New.
type Stats struct {
	// Duplicates counts messages the client dropped because their seq was
	// not above the last delivered in their room: a resume or tier move
	// that overlapped. The server promises exact resumes, so a non-zero
	// count means a server or network sent a message twice; Events never
	// shows one.
	Duplicates uint64
	// Connects counts links that went live: the first connect, and every
	// reconnect and tier move after it.
	Connects uint64
}

// Stats returns the client's counters now.
func (c *Client) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Stats{Duplicates: c.dups, Connects: c.connects.Load()}
}

// New returns a Client for cfg. It does not connect until Run.
func New(cfg Config) *Client {
	cfg = cfg.withDefaults()
	c := &Client{
		cfg:    cfg,
		base:   strings.TrimRight(cfg.URL, "/"),
		http:   cfg.HTTPClient,
		events: make(chan protocol.Envelope, cfg.EventBuffer),
		states: make(chan State, 64),
		moves:  make(chan struct{}, 1),
		pos:    make(map[string]uint64),
		queued: make(chan struct{}, 1),
		offer:  offer{Transports: defaultTiers, HeartbeatMS: 15000, PollIntervalMS: 5000},
		key:    NewID(),
	}
	if c.http == nil {
		c.http = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
		c.ownHTTP = true
	}
	for _, r := range cfg.Rooms {
		if protocol.ValidRoom(r) == nil && !slices.Contains(c.rooms, r) {
			c.rooms = append(c.rooms, r)
		}
	}
	return c
}

// Events returns the server envelopes in the order they arrived: message,
// joined, receipt, presence, typing and error (ping, pong, ack, control
// and disconnect are the client's own business). Messages are delivered
// once each: one whose seq is not above the last delivered for its room
// is dropped, so reconnects and tier moves never duplicate. Within a room
// they come in seq order; across rooms, in arrival order. Envelopes for
// rooms the client has left are dropped too. A joined envelope comes with
// each (re)subscription. An error that refused a join carries the room
// in Room; the room is then no longer followed if no retry can fix it.
//
// The channel is closed when Run returns. The client buffers what the
// caller has not read yet, so the caller should keep reading. With
// Config.Deliver set, the envelopes go there instead and the channel
// only closes.
func (c *Client) Events() <-chan protocol.Envelope { return c.events }

// State returns the connection state now.
func (c *Client) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.state
	s.Features = maps.Clone(s.Features)
	return s
}

// States returns a channel that receives each new State. When the caller
// falls behind, the oldest states are dropped; State is always current.
func (c *Client) States() <-chan State { return c.states }

// setState changes the state under mu and publishes it.
func (c *Client) setState(change func(*State)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.setStateLocked(change)
}

func (c *Client) setStateLocked(change func(*State)) {
	change(&c.state)
	c.state.Level, c.state.Features = c.offer.Level, c.offer.Features
	s := c.state
	s.Features = maps.Clone(s.Features)
	for {
		select {
		case c.states <- s:
			return
		default:
		}
		select {
		case <-c.states:
		default:
		}
	}
}

// Positions returns the last seq delivered in each followed room.
func (c *Client) Positions() map[string]uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.pos)
}

// Join follows room from now on. A room that was followed before (and not
// left) resumes from its last seq instead. The joined envelope, or an
// error such as forbidden, arrives on Events.
func (c *Client) Join(room string) error {
	if err := protocol.ValidRoom(room); err != nil {
		return err
	}
	c.mu.Lock()
	if slices.Contains(c.rooms, room) {
		c.mu.Unlock()
		return nil
	}
	c.rooms = append(c.rooms, room)
	l := c.subscribedLink()
	var since *uint64
	if p, ok := c.pos[room]; ok {
		since = &p
	}
	c.mu.Unlock()
	if l != nil {
		l.roomsChanged(protocol.Envelope{Type: protocol.TypeJoin, Room: room, Since: since})
	}
	return nil
}

// Leave stops following room, forgets its position and takes the room
// out of the user's room list on the server (ListRooms), which tells the
// user's other sessions. A live WebSocket carries it as a leave frame;
// otherwise it is POST /v1/leave, within ConnectTimeout, whose failure
// Leave returns (the room is no longer followed all the same).
func (c *Client) Leave(room string) error {
	if err := protocol.ValidRoom(room); err != nil {
		return err
	}
	c.mu.Lock()
	i := slices.Index(c.rooms, room)
	if i < 0 {
		c.mu.Unlock()
		return c.tellLeave(room) // a listed room this client does not follow
	}
	c.rooms = slices.Delete(c.rooms, i, i+1)
	delete(c.pos, room)
	l := c.subscribedLink()
	c.mu.Unlock()
	if l != nil {
		l.roomsChanged(protocol.Envelope{Type: protocol.TypeLeave, Room: room})
	}
	if l == nil || l.tier != WebSocket || l.ctx.Err() != nil {
		return c.tellLeave(room)
	}
	return nil
}

// Rooms returns the rooms followed.
func (c *Client) Rooms() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.rooms)
}

// subscribedLink returns the current link if it has taken its room
// snapshot, so that a change to the rooms must be told to it. Called with
// mu held.
func (c *Client) subscribedLink() *link {
	if c.link != nil && c.link.subscribed {
		return c.link
	}
	return nil
}

// SwitchTransport asks Run to move to tier now (if the server offers it),
// resuming from the last positions. It returns at once; State shows the
// move. It is how an application (or a test) forces a tier move; a
// control envelope from the server does the same on its own.
func (c *Client) SwitchTransport(tier string) error {
	if !slices.Contains(defaultTiers, tier) {
		return errors.New("client: unknown transport " + tier)
	}
	c.mu.Lock()
	c.want = tier
	c.mu.Unlock()
	select {
	case c.moves <- struct{}{}:
	default:
	}
	return nil
}

// offers reports whether the server's latest offer includes tier.
func (c *Client) offers(tier string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Contains(c.offer.Transports, tier)
}

// takeWant returns and clears the tier SwitchTransport asked for, unless
// it is current.
func (c *Client) takeWant(current string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	w := c.want
	c.want = ""
	if w == current {
		return ""
	}
	return w
}

// enqueueLocked adds e to the delivery queue. Called with mu held.
func (c *Client) enqueueLocked(e protocol.Envelope) {
	if c.queue.push(&e) {
		// deliverLoop waits only after it found the queue empty, under
		// mu: an envelope that joins a queue that was not empty is
		// taken with the rest, without a signal.
		select {
		case c.queued <- struct{}{}:
		default:
		}
	}
}

// deliverLoop hands queued envelopes to events (or Config.Deliver) in
// order until ctx ends. It is the only sender on events and closes it on
// return.
func (c *Client) deliverLoop(ctx context.Context) {
	defer close(c.events)
	defer func() {
		// Run is over: what is still queued cannot be delivered.
		c.mu.Lock()
		c.queue.reset()
		c.mu.Unlock()
	}()
	var batch envQueue // the blocks being delivered
	c.mu.Lock()
	for {
		c.queue.takeInto(&batch)
		c.mu.Unlock()
		n := batch.n
		for _, blk := range batch.blocks {
			if c.cfg.Deliver != nil {
				c.cfg.Deliver(blk)
			} else {
				for _, e := range blk {
					select {
					case c.events <- e:
					case <-ctx.Done():
						return
					}
				}
			}
			clear(blk) // let the delivered strings go
		}
		// The delivered blocks go back to the shared lists for the next
		// batch, this client's or another's, rather than new ones being
		// allocated and cleared for every batch (a sixth of the load
		// tool's CPU in chat at 10k users).
		batch.release()
		c.mu.Lock()
		if n > 0 || c.queue.n > 0 {
			continue // more may have come meanwhile
		}
		c.queue.trim() // idle
		c.mu.Unlock()
		select {
		case <-c.queued:
		case <-ctx.Done():
			return
		}
		c.mu.Lock()
	}
}
