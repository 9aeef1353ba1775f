package httpx

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/chatd/chatd/core"
)

// ErrWouldWait is what TryWrite returns when the write would have to
// wait for the client (its socket's buffer is full), or when the
// connection cannot be written to without waiting at all: the part
// written, if any, is in its count.
var ErrWouldWait = errors.New("httpx: the write would wait")

// A TryWriter is a connection wrapper that can write without waiting:
// TryWrite writes what the socket under it takes at once and returns
// ErrWouldWait with the count if that is not all of p. A wrapper that
// changes what Write does (a test's that mutes a node) implements it so
// that SlotConn's first attempt does what its Write would.
type TryWriter interface {
	TryWrite(p []byte) (int, error)
}

// TryWrite writes to c what its socket takes without waiting. It reaches
// the socket through TCP connections, the listener's own wrapper and
// TryWriters; any other connection (TLS among them) returns 0 and
// ErrWouldWait, for the caller to write as usual.
func TryWrite(c net.Conn, p []byte) (int, error) {
	if t := tryWriterOf(c); t != nil {
		return t.TryWrite(p)
	}
	return 0, ErrWouldWait
}

// tryWriterOf returns what writes to c without waiting, or nil.
func tryWriterOf(c net.Conn) TryWriter {
	for range 4 {
		switch v := c.(type) {
		case *net.TCPConn:
			rc, err := v.SyscallConn()
			if err != nil {
				return nil
			}
			t := &rawTry{rc: rc}
			t.f = t.write
			return t
		case *limitedConn:
			c = v.Conn
		case TryWriter:
			return v
		default:
			return nil
		}
	}
	return nil
}

// rawTry writes to a socket once, without waiting for room in it. Its
// callback is made once, so that a write allocates nothing.
type rawTry struct {
	rc syscall.RawConn    // Static after construction.
	f  func(uintptr) bool // t.write; static after construction.

	mu  sync.Mutex // one write at a time: p, n and err are its
	p   []byte
	n   int
	err error
}

func (t *rawTry) TryWrite(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.p, t.n, t.err = p, 0, nil
	err := t.rc.Write(t.f) // the deadline, and the socket's closing, are checked first
	n, werr := t.n, t.err
	t.p, t.err = nil, nil
	switch {
	case err != nil:
		return 0, err
	case errors.Is(werr, syscall.EAGAIN):
		return n, ErrWouldWait
	case werr != nil:
		return n, &net.OpError{Op: "write", Net: "tcp", Err: werr}
	case n < len(p):
		return n, ErrWouldWait
	}
	return n, nil
}

// write is the raw write: one system call (again if interrupted), and
// true whatever came of it, so that RawConn.Write never waits.
func (t *rawTry) write(fd uintptr) bool {
	for {
		n, err := syscall.Write(int(fd), t.p)
		if err == syscall.EINTR {
			continue
		}
		t.n, t.err = max(n, 0), err
		return true
	}
}

// SlotConn is a connection whose writes may keep a session writer's
// slot (core.Config.WritersRunning): while the writer holds it (Hold),
// a write first goes to the socket without waiting, and only if the
// socket cannot take all of it does the slot go back before the write
// waits for the client. A slow client thus never keeps the other
// writers waiting; a write the socket takes at once, nearly all of them,
// keeps the slot to its end, so that the writers at work are as many as
// the slots and nothing else stands behind them in the run queue.
//
// Between Hold and Drop the slot is given back exactly once: by Hold
// itself on a connection TryWrite cannot reach the socket of (TLS), or
// while another goroutine's write that began without the slot is still
// under way (the writer's would wait behind it), by the first write that
// would wait, or by Drop. Write may be called from
// any goroutine (a WebSocket's reader answers pings); Hold and Drop from
// the writer's.
type SlotConn struct {
	net.Conn
	r    net.Conn    // what Read reads: Conn, or the socket under the listener's wrapper; static after construction.
	try  TryWriter   // nil: Hold releases at once; static after construction.
	held atomic.Bool // a slot is held: set by Hold; whoever clears it gives the slot back
	// Writes that began while no slot was held and may still wait for the
	// client (a reader's answer to a ping): a Hold that finds one gives
	// the slot back at once, since the writer's own write would wait
	// behind it, on gorilla's lock.
	plain atomic.Int32
	slot  core.Slot // set by the first Hold, before held is set; the same slot ever after
	// meter sees every read (Meter); nil: none. Set before the first read.
	meter ReadMeter
}

// ReadMeter sees each read of a SlotConn it is set on (SlotConn.Meter):
// Reading is given the read's buffer before the read, and Read what the
// read returned, returning what the SlotConn's Read returns. Read may
// block, holding the client back.
type ReadMeter interface {
	Reading(p []byte)
	Read(n int, err error) (int, error)
}

// Meter has m see every read of c from now on. Call it before c is read,
// on the goroutine that will read it or before that one starts.
func (c *SlotConn) Meter(m ReadMeter) { c.meter = m }

// NewSlotConn wraps c.
func NewSlotConn(c net.Conn) *SlotConn {
	r := c
	if l, ok := c.(*limitedConn); ok {
		r = l.Conn
	}
	return &SlotConn{Conn: c, r: r, try: tryWriterOf(c)}
}

// Read reads from the socket past the listener's wrapper, whose Read is
// the socket's: a WebSocket reader parks in this call, and its depth is
// what keeps an idle reader's stack at 2 KB (DESIGN.md, "Memory per
// connection"), with about 20 bytes to spare. Going through both wrappers
// cost a frame more, and every idle reader 2 KB more. A meter is told of
// the read after it returns, and takes no more of this frame than the
// read does (its buffer goes ahead of the read, not as an argument).
func (c *SlotConn) Read(p []byte) (int, error) {
	if c.meter == nil {
		return c.r.Read(p)
	}
	c.meter.Reading(p)
	return c.meter.Read(c.r.Read(p))
}

// Hold lets the writes that follow keep slot until Drop, or until one of
// them would wait for the client. slot must be the same at every call.
func (c *SlotConn) Hold(slot core.Slot) {
	if c.try == nil {
		slot.Release()
		return
	}
	if c.slot == nil {
		c.slot = slot
	}
	c.held.Store(true)
	// A write that began before held was set went the plain way and may
	// be waiting for the client; one that begins after sees held. (Both
	// sides store, then load: Go's atomics are sequentially consistent,
	// so at least one of them sees the other.)
	if c.plain.Load() > 0 && c.held.CompareAndSwap(true, false) {
		slot.Blocked()
	}
}

// WriteHolding has w write frames with slot held through c's writes
// (Hold, then Drop), as a transport's core.SlotWriter does. A nil c, a
// connection with no SlotConn or one not ready to write through it,
// gives the slot back first.
func (c *SlotConn) WriteHolding(slot core.Slot, w interface{ Write([]core.Frame) error }, frames []core.Frame) error {
	if c == nil {
		slot.Release()
		return w.Write(frames)
	}
	c.Hold(slot)
	err := w.Write(frames)
	c.Drop()
	return err
}

// Drop ends Hold, giving the slot back if no write has.
func (c *SlotConn) Drop() {
	if c.held.Swap(false) {
		c.slot.Release()
	}
}

// Write writes p, giving the held slot back first if the socket cannot
// take p at once.
func (c *SlotConn) Write(p []byte) (int, error) {
	c.plain.Add(1)
	if !c.held.Load() {
		n, err := c.Conn.Write(p)
		c.plain.Add(-1)
		return n, err
	}
	c.plain.Add(-1)
	n, err := c.try.TryWrite(p)
	if !errors.Is(err, ErrWouldWait) {
		return n, err
	}
	if c.held.CompareAndSwap(true, false) {
		c.slot.Blocked()
	}
	m, err := c.Conn.Write(p[n:])
	return n + m, err
}

// NetConn returns the connection it wraps, as tls.Conn's does.
func (c *SlotConn) NetConn() net.Conn { return c.Conn }

// CloseWrite shuts the write side, as *net.TCPConn does.
func (c *SlotConn) CloseWrite() error { return closeWrite(c.Conn) }
