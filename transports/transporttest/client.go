package transporttest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/chatd/chatd/core/protocol"
)

// Join is a room to subscribe to at connect time, from Since (nil: live).
type Join struct {
	Room  string
	Since *uint64
}

// Client is a test client over one transport.
type Client interface {
	// Transport names the transport in use.
	Transport() string
	// Send sends a message and waits for its ack or error envelope.
	Send(ctx context.Context, room, id, text string) (protocol.Envelope, error)
	// Do sends a raw client envelope; replies arrive on Next, or, when it
	// carries a ref, are returned (an ack, error, joined or pong).
	Do(ctx context.Context, e protocol.Envelope) (protocol.Envelope, error)
	// Next returns the next server envelope that is not a reply, ping or
	// pong, nor of the user's own stream, waiting until ctx ends.
	Next(ctx context.Context) (protocol.Envelope, error)
	// NextUser returns the next envelope of the user's own stream: a
	// "room" envelope, or a joined envelope for "~" (protocol.UserRoom),
	// waiting until ctx ends. Next never returns these, so that tests of
	// rooms do not see the user events their joins cause.
	NextUser(ctx context.Context) (protocol.Envelope, error)
	// Closed returns the close code once the server has ended the
	// connection.
	Closed() <-chan int
	// Close ends the connection.
	Close()
}

// Dialer connects a client for token, joining rooms.
type Dialer func(t testing.TB, e *Env, token string, joins []Join) Client

// Transports lists the dialers behaviour tests run over.
var Transports = map[string]Dialer{
	"websocket": DialWS,
	"sse":       DialSSE,
	"poll":      DialPoll,
}

// Run runs test once per transport, as a subtest named after it.
func Run(t *testing.T, test func(t *testing.T, dial Dialer)) {
	for _, name := range []string{"websocket", "sse", "poll"} {
		dial, ok := Transports[name]
		if !ok {
			continue
		}
		t.Run(name, func(t *testing.T) { test(t, dial) })
	}
}

// inbox is the shared receive side of a client: events in order, replies
// by ref. It is fed by one reader goroutine.
type inbox struct {
	mu      sync.Mutex
	events  []protocol.Envelope
	user    []protocol.Envelope // the user's own stream
	notify  chan struct{}       // cap 1
	replies map[string]chan protocol.Envelope
	closed  chan int // the close code, once
	done    chan struct{}
	// onPing, if set, is called by the reader for each server ping, after
	// the frame is delivered. Static after construction.
	onPing func()
}

func newInbox() *inbox {
	return &inbox{notify: make(chan struct{}, 1), replies: make(map[string]chan protocol.Envelope),
		closed: make(chan int, 1), done: make(chan struct{})}
}

// deliver routes one server frame, an envelope or an array of them.
func (in *inbox) deliver(data []byte) error {
	var list []protocol.Envelope
	if len(data) > 0 && data[0] == '[' {
		if err := json.Unmarshal(data, &list); err != nil {
			return fmt.Errorf("bad batch %q: %w", data, err)
		}
	} else {
		var e protocol.Envelope
		if err := json.Unmarshal(data, &e); err != nil {
			return fmt.Errorf("bad frame %q: %w", data, err)
		}
		list = append(list, e)
	}
	pings := 0
	defer func() {
		for ; pings > 0 && in.onPing != nil; pings-- {
			in.onPing()
		}
	}()
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, e := range list {
		if e.Type == protocol.TypePing {
			pings++
			continue
		}
		if e.Type == protocol.TypePong && e.Ref != "" {
			if c := in.replies[e.Ref]; c != nil {
				delete(in.replies, e.Ref)
				c <- e
			}
			continue
		}
		if e.Type == protocol.TypePong {
			continue
		}
		if e.Ref != "" && (e.Type == protocol.TypeAck || e.Type == protocol.TypeError || e.Type == protocol.TypeJoined) {
			if c := in.replies[e.Ref]; c != nil {
				delete(in.replies, e.Ref)
				c <- e
				continue
			}
		}
		if e.Type == protocol.TypeRoom || e.Room == protocol.UserRoom {
			in.user = append(in.user, e)
			continue
		}
		in.events = append(in.events, e)
	}
	select {
	case in.notify <- struct{}{}:
	default:
	}
	return nil
}

func (in *inbox) expect(ref string) chan protocol.Envelope {
	c := make(chan protocol.Envelope, 1)
	in.mu.Lock()
	in.replies[ref] = c
	in.mu.Unlock()
	return c
}

func (in *inbox) wait(ctx context.Context, c chan protocol.Envelope) (protocol.Envelope, error) {
	select {
	case e := <-c:
		return e, nil
	case <-ctx.Done():
		return protocol.Envelope{}, ctx.Err()
	case <-in.done:
		return protocol.Envelope{}, errors.New("connection closed")
	}
}

func (in *inbox) next(ctx context.Context) (protocol.Envelope, error) {
	return in.take(ctx, &in.events)
}

// NextUser implements Client for every test client.
func (in *inbox) NextUser(ctx context.Context) (protocol.Envelope, error) {
	return in.take(ctx, &in.user)
}

// take pops the first envelope of queue (events or user), waiting for one.
func (in *inbox) take(ctx context.Context, queue *[]protocol.Envelope) (protocol.Envelope, error) {
	for {
		in.mu.Lock()
		if len(*queue) > 0 {
			e := (*queue)[0]
			*queue = (*queue)[1:]
			in.mu.Unlock()
			return e, nil
		}
		in.mu.Unlock()
		select {
		case <-in.notify:
		case <-in.done:
			in.mu.Lock()
			n := len(*queue)
			in.mu.Unlock()
			if n == 0 {
				return protocol.Envelope{}, errors.New("connection closed")
			}
		case <-ctx.Done():
			return protocol.Envelope{}, ctx.Err()
		}
	}
}

// Ctx returns a context for one step of a test: generous, so that a slow
// CI machine never fails a test, but bounded, so a hang fails loudly.
func Ctx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}
