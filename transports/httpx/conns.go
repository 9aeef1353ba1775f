package httpx

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chatd/chatd/core/protocol"
)

// DefaultRefusing is how many refused connections ConnLimits answers at
// once when Refusing is 0.
const DefaultRefusing = 64

const (
	// refuseLinger bounds a refusal: writing the answer, and then reading
	// what the client sent until it closes, so that closing does not
	// reset the connection before the client has read the answer.
	refuseLinger = time.Second
	// refuseDrain caps what a refusal reads from the client.
	refuseDrain = 64 << 10
)

// Refusal reasons, the values of the reason label.
const (
	reasonPerIP = "per_ip"
	reasonNode  = "node"
)

// ConnLimits caps the connections a listener keeps open. The zero value
// caps nothing.
type ConnLimits struct {
	// PerIP caps the open connections from one client address. An IPv6
	// client is counted by its /64, the block one subscriber gets. Behind
	// a proxy every connection comes from the proxy: set 0 there.
	// 0: no cap.
	PerIP int
	// Total caps the open connections on the node; keep it below the file
	// descriptor limit. 0: no cap.
	Total int
	// Refusing caps the refusals being answered at once; a connection
	// refused beyond it is closed without an answer. Each holds a
	// descriptor for at most a second. 0: DefaultRefusing.
	Refusing int
	// Silent closes a connection over a cap without an answer. Set it
	// when the listener's connections speak TLS: the plain HTTP answer
	// would come before the handshake, and a client reads it as a broken
	// handshake rather than a 429 or a 503.
	Silent bool
	// Metrics registers chat_http_conns_open,
	// chat_http_conns_refused_total{reason} and
	// chat_http_conns_refused_unanswered_total. nil: not registered.
	Metrics prometheus.Registerer
}

// Listener is a net.Listener that enforces ConnLimits. Accept hands out
// connections within the caps; a connection over a cap is answered with a
// minimal HTTP/1.1 error and closed, in a goroutine of its own, at most
// Refusing at a time:
//
//   - over PerIP: 429 too_many_connections, Retry-After: 1;
//   - over Total: 503 unavailable, Retry-After: 5.
//
// Both carry Connection: close and the error envelope; the statuses come
// from the one code table. A connection counts from Accept until its
// first Close, hijacked (WebSocket) connections included.
type Listener struct {
	net.Listener                        // Static after construction.
	limits       ConnLimits             // Static after construction.
	answerPerIP  []byte                 // Static: the raw answer over PerIP.
	answerNode   []byte                 // Static: the raw answer over Total.
	slots        chan struct{}          // Static channel: one token per refusal in flight.
	linger       time.Duration          // Static after construction: refuseLinger.
	refused      *prometheus.CounterVec // Static after construction.
	unanswered   prometheus.Counter     // Static after construction.
	refusals     sync.WaitGroup         // Refusal goroutines, awaited by Close.
	mu           sync.Mutex             // Guards the fields below.
	open         int                    // Guarded by mu.
	perIP        map[netip.Addr]int     // Guarded by mu; entries above zero only.
	refusing     map[net.Conn]struct{}  // Guarded by mu: refusals in flight.
	closed       bool                   // Guarded by mu.
}

// NewListener wraps ln with limits. It panics if Metrics is set and the
// metrics are already registered there.
func NewListener(ln net.Listener, limits ConnLimits) *Listener {
	if ln == nil {
		panic("httpx: NewListener with a nil listener")
	}
	if limits.Refusing <= 0 {
		limits.Refusing = DefaultRefusing
	}
	l := &Listener{
		Listener:    ln,
		limits:      limits,
		answerPerIP: rawAnswer(protocol.CodeTooManyConnections, "too many connections from your address; retry later"),
		answerNode:  rawAnswer(protocol.CodeUnavailable, "the server is at its connection limit; retry later"),
		slots:       make(chan struct{}, limits.Refusing),
		linger:      refuseLinger,
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chat_http_conns_refused_total",
			Help: "Connections refused at accept, by the cap they were over (per_ip, node)."}, []string{"reason"}),
		unanswered: prometheus.NewCounter(prometheus.CounterOpts{Name: "chat_http_conns_refused_unanswered_total",
			Help: "Refused connections closed without an answer because too many refusals were in flight."}),
		perIP:    map[netip.Addr]int{},
		refusing: map[net.Conn]struct{}{},
	}
	l.refused.WithLabelValues(reasonPerIP)
	l.refused.WithLabelValues(reasonNode)
	if limits.Metrics != nil {
		limits.Metrics.MustRegister(l.refused, l.unanswered, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "chat_http_conns_open", Help: "Open HTTP connections, hijacked ones included.",
		}, func() float64 { return float64(l.Open()) }))
	}
	return l
}

// Accept returns the next connection within the caps. Errors from the
// wrapped listener are returned as they are, so http.Server still backs
// off on temporary ones such as EMFILE.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		key := clientKey(c.RemoteAddr())
		switch l.admit(key) {
		case "":
			return &limitedConn{Conn: c, l: l, key: key}, nil
		case reasonNode:
			l.refuse(c, reasonNode, l.answerNode)
		default:
			l.refuse(c, reasonPerIP, l.answerPerIP)
		}
	}
}

// Close closes the wrapped listener, cuts the refusals in flight and
// waits for them. Connections already handed out are left to their owner.
func (l *Listener) Close() error {
	err := l.Listener.Close()
	l.mu.Lock()
	l.closed = true
	for c := range l.refusing {
		_ = c.Close()
	}
	l.mu.Unlock()
	l.refusals.Wait()
	return err
}

// Open returns the number of connections handed out and not yet closed.
func (l *Listener) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open
}

// admit counts a new connection from key, or returns the reason it is
// over a cap.
func (l *Listener) admit(key netip.Addr) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.limits.Total > 0 && l.open >= l.limits.Total {
		return reasonNode
	}
	if l.limits.PerIP > 0 && key.IsValid() && l.perIP[key] >= l.limits.PerIP {
		return reasonPerIP
	}
	l.open++
	if key.IsValid() {
		l.perIP[key]++
	}
	return ""
}

// release uncounts a connection from key.
func (l *Listener) release(key netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open--
	if !key.IsValid() {
		return
	}
	if n := l.perIP[key] - 1; n > 0 {
		l.perIP[key] = n
	} else {
		delete(l.perIP, key)
	}
}

// refuse counts the refusal and answers it in a goroutine if a slot is
// free; otherwise it closes c at once.
func (l *Listener) refuse(c net.Conn, reason string, answer []byte) {
	l.refused.WithLabelValues(reason).Inc()
	if l.limits.Silent {
		_ = c.Close()
		return
	}
	select {
	case l.slots <- struct{}{}:
	default:
		l.unanswered.Inc()
		_ = c.Close()
		return
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		<-l.slots
		_ = c.Close()
		return
	}
	l.refusing[c] = struct{}{}
	l.refusals.Add(1)
	l.mu.Unlock()
	go l.answer(c, answer)
}

// answer writes the refusal, closes the write side and reads what the
// client sent until it closes, all within the linger, then closes c.
func (l *Listener) answer(c net.Conn, answer []byte) {
	defer func() {
		_ = c.Close()
		l.mu.Lock()
		delete(l.refusing, c)
		l.mu.Unlock()
		<-l.slots
		l.refusals.Done()
	}()
	_ = c.SetDeadline(time.Now().Add(l.linger))
	if _, err := c.Write(answer); err != nil {
		return
	}
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	_, _ = io.CopyN(io.Discard, c, refuseDrain)
}

// clientKey is the address a connection is counted under: the IPv4
// address, or the /64 of an IPv6 one. It is invalid for non-IP addresses.
func clientKey(a net.Addr) netip.Addr {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return netip.Addr{}
	}
	ip, ok := netip.AddrFromSlice(ta.IP)
	if !ok {
		return netip.Addr{}
	}
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.Addr()
	}
	return ip
}

// rawAnswer is a complete HTTP/1.1 response carrying code's error
// envelope, with the status from the code table.
func rawAnswer(code protocol.Code, msg string) []byte {
	body, err := json.Marshal(protocol.ErrorEnvelope(protocol.Errorf(code, "%s", msg), ""))
	if err != nil {
		panic("httpx: " + err.Error())
	}
	body = append(body, '\n')
	status := Status(code)
	var b bytes.Buffer
	fmt.Fprintf(&b, "HTTP/1.1 %d %s\r\n", status, http.StatusText(status))
	b.WriteString("Content-Type: application/json\r\nCache-Control: no-store\r\n")
	if s := retryAfter(status); s != "" {
		fmt.Fprintf(&b, "Retry-After: %s\r\n", s)
	}
	fmt.Fprintf(&b, "Connection: close\r\nContent-Length: %d\r\n\r\n", len(body))
	b.Write(body)
	return b.Bytes()
}

// limitedConn is an admitted connection; its first Close releases its
// count. It keeps CloseWrite and ReadFrom so that net/http still closes
// gracefully and still uses sendfile.
type limitedConn struct {
	net.Conn
	l        *Listener   // Static after construction.
	key      netip.Addr  // Static after construction.
	released atomic.Bool // Set by the first Close.
}

// errNoCloseWrite is returned by CloseWrite on a connection without one.
var errNoCloseWrite = errors.New("httpx: connection cannot close its write side")

// Close closes the connection; the first call releases its count.
func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	if c.released.CompareAndSwap(false, true) {
		c.l.release(c.key)
	}
	return err
}

// CloseWrite shuts the write side, as *net.TCPConn does.
func (c *limitedConn) CloseWrite() error { return closeWrite(c.Conn) }

// NetConn returns the connection it wraps, as tls.Conn's does.
func (c *limitedConn) NetConn() net.Conn { return c.Conn }

// ReadFrom lets net/http send files with sendfile when the connection
// can.
func (c *limitedConn) ReadFrom(r io.Reader) (int64, error) { return readFrom(c.Conn, r) }

// closeWrite shuts c's write side, if it can: what a wrapper of a
// connection forwards so that net/http can still half-close it.
func closeWrite(c net.Conn) error {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errNoCloseWrite
}

// readFrom copies r to c with c's ReadFrom (sendfile) when it has one.
func readFrom(c net.Conn, r io.Reader) (int64, error) {
	if rf, ok := c.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c}, r)
}
