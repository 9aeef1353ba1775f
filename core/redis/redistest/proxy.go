package redistest

import (
	"bytes"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// Proxy is a TCP proxy in front of a server that a test can cut (every
// connection through it closed at once, new ones refused) and restore:
// Redis goes away for the clients of the proxy only, as a network fault
// would, while the others go on. It can also hold a fresh connection's
// traffic after a given command (HoldNext), to pin down an ordering.
type Proxy struct {
	ln     net.Listener
	target string
	done   chan struct{} // closed at the test's end
	wg     sync.WaitGroup

	mu    sync.Mutex
	cut   bool                  // guarded by mu
	conns map[net.Conn]struct{} // guarded by mu: both ends of every open connection
	hold  *Hold                 // guarded by mu: armed by HoldNext until a connection claims it
}

// NewProxy starts a proxy to target (host:port) for the test; it stops,
// with every connection through it, at the test's end.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("redistest: proxy: %v", err)
	}
	p := &Proxy{ln: ln, target: target, done: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		close(p.done)
		ln.Close()
		p.Cut()
		p.wg.Wait()
	})
	return p
}

// URL is a redis:// URL for the proxy.
func (p *Proxy) URL() string { return "redis://" + p.ln.Addr().String() + "/0" }

// Cut closes every connection through the proxy and refuses new ones
// until Restore.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

// Restore lets connections through again.
func (p *Proxy) Restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = false
}

// Hold is one connection held after a command; see HoldNext.
type Hold struct {
	cmd      string        // lower case
	Sent     chan struct{} // closed once the command has gone to the server
	Answered chan struct{} // closed once a reply naming the command has come back
	release  chan struct{}
	relOnce  sync.Once
	ansOnce  sync.Once
}

// Release lets the held connection's client bytes through again.
func (h *Hold) Release() { h.relOnce.Do(func() { close(h.release) }) }

// HoldNext arms a hold: the first new connection whose client sends the
// command named cmd (such as "subscribe") has everything up to that
// command forwarded, and whatever its client sends after it waits until
// Release.
func (p *Proxy) HoldNext(cmd string) *Hold {
	h := &Hold{cmd: strings.ToLower(cmd), Sent: make(chan struct{}), Answered: make(chan struct{}),
		release: make(chan struct{})}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hold = h
	return h
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		p.mu.Lock()
		if err != nil || p.cut {
			p.mu.Unlock()
			c.Close()
			if s != nil {
				s.Close()
			}
			continue
		}
		p.conns[c], p.conns[s] = struct{}{}, struct{}{}
		pc := &proxied{client: c, server: s, hold: p.hold}
		p.mu.Unlock()
		p.wg.Add(2)
		go p.fromClient(pc)
		go p.fromServer(pc)
	}
}

// proxied is one connection through the proxy.
type proxied struct {
	client, server net.Conn
	hold           *Hold                // the hold armed when it connected; nil once it is no candidate
	claimed        atomic.Pointer[Hold] // the hold this connection claimed
}

// claim hands the armed hold to the first connection that sends its
// command.
func (p *Proxy) claim(h *Hold) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.hold != h {
		return false
	}
	p.hold = nil
	return true
}

// fromClient copies the client's bytes to the server. While the
// connection may claim a hold it forwards whole commands only, and after
// the held command it waits for the release.
func (p *Proxy) fromClient(pc *proxied) {
	defer p.wg.Done()
	defer pc.client.Close()
	defer pc.server.Close()
	var pending []byte
	buf := make([]byte, 32<<10)
	for {
		n, err := pc.client.Read(buf)
		pending = append(pending, buf[:n]...)
		for pc.hold != nil {
			end, name := command(pending)
			if end == -2 {
				pc.hold = nil // not RESP: no candidate
			}
			if end < 0 {
				break
			}
			h := pc.hold
			held := name == h.cmd && p.claim(h)
			if held {
				pc.claimed.Store(h) // before the command goes: its reply may come back at once
			}
			if _, werr := pc.server.Write(pending[:end]); werr != nil {
				return
			}
			pending = pending[end:]
			if name == h.cmd {
				pc.hold = nil // held here, or claimed by another connection
			}
			if !held {
				continue
			}
			close(h.Sent)
			select {
			case <-h.release:
			case <-p.done:
				return
			}
		}
		if pc.hold == nil && len(pending) > 0 {
			if _, werr := pc.server.Write(pending); werr != nil {
				return
			}
			pending = pending[:0]
		}
		if err != nil {
			return
		}
	}
}

// fromServer copies the server's bytes to the client, and closes the
// claimed hold's Answered at the first reply that names its command.
func (p *Proxy) fromServer(pc *proxied) {
	defer p.wg.Done()
	defer pc.client.Close()
	defer pc.server.Close()
	buf := make([]byte, 32<<10)
	var tail []byte // the end of the previous chunk, for a name split across two
	for {
		n, err := pc.server.Read(buf)
		if h := pc.claimed.Load(); h != nil {
			seen := bytes.ToLower(append(tail, buf[:n]...))
			if bytes.Contains(seen, []byte(h.cmd)) {
				h.ansOnce.Do(func() { close(h.Answered) })
			}
			tail = append(tail[:0], seen[max(0, len(seen)-len(h.cmd)):]...)
		}
		if n > 0 {
			if _, werr := pc.client.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// command parses the RESP command at the start of b: its length and its
// name in lower case, or -1 if b does not hold a whole one yet, or -2 if
// b is not RESP.
func command(b []byte) (int, string) {
	line := func(at int) (int, int, bool) { // the number on the line at b[at:], and where the next line starts
		if at >= len(b) {
			return 0, 0, false
		}
		i := bytes.Index(b[at:], []byte("\r\n"))
		if i < 0 {
			return 0, 0, false
		}
		n, err := strconv.Atoi(string(b[at+1 : at+i]))
		return n, at + i + 2, err == nil
	}
	if len(b) == 0 {
		return -1, ""
	}
	if b[0] != '*' {
		return -2, ""
	}
	args, pos, ok := line(0)
	if !ok {
		return -1, ""
	}
	name := ""
	for k := range args {
		if pos >= len(b) || b[pos] != '$' {
			return -1, ""
		}
		size, start, ok := line(pos)
		if !ok || start+size+2 > len(b) {
			return -1, ""
		}
		if k == 0 {
			name = strings.ToLower(string(b[start : start+size]))
		}
		pos = start + size + 2
	}
	return pos, name
}
