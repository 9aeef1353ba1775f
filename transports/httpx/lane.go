package httpx

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
)

// laneWriteTimeout bounds the write of one answer on a lane (up to an
// eighth more: deadlineSlack).
const laneWriteTimeout = 10 * time.Second

// Lane serves the keep-alive requests of a few GET routes (the long
// poll, and in chatd the REST reads a client makes at connect) on
// HTTP/1.1 connections it takes over from net/http, with less
// per request than net/http spends: no goroutine per request (net/http
// starts one to watch the connection while the handler runs), no
// response machinery, one write per answer. A poll client asks again as
// soon as it is answered, so a node of busy poll clients spends a good
// share of its core on net/http's request cycle (measured on a 2-core
// AMD EPYC VM: a trivial handler costs 42 µs a request in net/http, 25
// µs on a lane's loop).
//
// A handler takes its connection over with Take once it has written a
// complete answer (with Content-Length). From then on the lane reads the
// connection's requests itself: one that is a GET of a lane route, in
// HTTP/1.1, with no body, no Expect or Upgrade, one Host and a head
// within the server's MaxHeaderBytes and the reader's buffer, goes
// through the server's own Handler (every middleware included) on the
// lane's goroutine; any other request, and the bytes after it, goes
// back to net/http untouched, as a new connection of the server (see
// Attach), which answers it as it answers any request. TLS connections
// are not taken over. Keep takes the connections of other routes' answers
// too, for a lane to hold while they are idle.
//
// What the lane does not give: a request's context is not cancelled when
// its client goes away while the handler runs (net/http's watching
// goroutine is what the lane saves); a held poll notices when it parks,
// or when its answer cannot be written.
//
// A Lane takes nothing over until Attach; NewLane names its routes.
type Lane struct {
	paths []string // Static after construction.

	srv atomic.Pointer[laneServer] // set by Attach

	mu     sync.Mutex
	conns  map[*laneConn]struct{} // guarded by mu.
	closed bool                   // guarded by mu.
	wg     sync.WaitGroup         // the lanes' goroutines

	served, returned, kept atomic.Uint64
}

// laneServer is what Attach takes from the server.
type laneServer struct {
	handler       http.Handler
	headerTimeout time.Duration
	idleTimeout   time.Duration
	maxHead       int
	ln            *laneListener
	errorLog      *log.Logger // the server's; nil: the log package's
	srv           *http.Server
	serving       sync.Once       // srv serves ln from the first give-back on
	ctx           context.Context // cancelled by Close
	cancel        context.CancelFunc
}

// NewLane returns a Lane for GET requests to paths.
func NewLane(paths ...string) *Lane {
	return &Lane{paths: paths, conns: make(map[*laneConn]struct{})}
}

// Attach makes srv the lane's server: its Handler serves the lane's
// requests, its MaxHeaderBytes, ReadHeaderTimeout and IdleTimeout (or
// ReadTimeout) bound them, and the connections the lane gives back are
// served by srv, on a listener of their own, from the first until Close.
// (Not from now: Serve settles the server's HTTP/2 set-up, which must
// see a TLS configuration given after Attach.) Attach once, before srv
// serves.
func (l *Lane) Attach(srv *http.Server) {
	maxHead := srv.MaxHeaderBytes
	if maxHead <= 0 {
		maxHead = http.DefaultMaxHeaderBytes
	}
	idle := srv.IdleTimeout
	if idle <= 0 {
		idle = srv.ReadTimeout
	}
	header := srv.ReadHeaderTimeout
	if header <= 0 {
		header = srv.ReadTimeout
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &laneServer{handler: srv.Handler, headerTimeout: header, idleTimeout: idle, maxHead: maxHead,
		errorLog: srv.ErrorLog, srv: srv, ln: newLaneListener(), ctx: ctx, cancel: cancel}
	if !l.srv.CompareAndSwap(nil, s) {
		cancel()
		panic("httpx: Lane attached twice")
	}
	// A connection given back for a poll the lane would not serve (a
	// header it leaves to net/http, say) is not taken over again: its
	// next polls would come back too, each at the cost of a give-back.
	prev := srv.ConnContext
	srv.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		if prev != nil {
			ctx = prev(ctx, c)
		}
		if rc, ok := c.(*replayConn); ok && rc.noLane {
			ctx = context.WithValue(ctx, noLaneKey{}, true)
		}
		return ctx
	}
}

// Take takes r's connection over from net/http, once the handler has
// written its whole answer to w, with its Content-Length, and reports
// whether the lane has it: then the handler must return without
// touching w. It takes nothing over (false) unless the lane is attached
// and open, r is an HTTP/1.1 request over plain TCP with no body (see
// Adoptable) and keeps its connection, and the answer does not close
// it. net/http's own decisions to close (keep-alives turned off, a
// shutdown under way) are not seen here: close the lane before the
// server. A request the lane serves already reports true.
func (l *Lane) Take(w http.ResponseWriter, r *http.Request) bool {
	if InLane(r) {
		return true
	}
	// The request as Adopt needs it (see Adoptable). Nor is an answer
	// without Content-Length taken, which net/http would send chunked and
	// the hijack leave unended.
	s := l.srv.Load()
	if s == nil || !l.Adoptable(r) || w.Header().Get("Connection") != "" || w.Header().Get("Content-Length") == "" {
		return false
	}
	rc := http.NewResponseController(w)
	// net/http keeps the end of a body in a buffer that a hijack drops.
	if rc.Flush() != nil {
		return false
	}
	nc, rw, err := rc.Hijack()
	if err != nil {
		return false
	}
	// What net/http read and did not serve comes first.
	var pending []byte
	if n := rw.Reader.Buffered(); n > 0 {
		b, _ := rw.Reader.Peek(n)
		pending = append(pending, b...)
	}
	l.adopt(s, nc, rw.Reader, pending)
	return true
}

// Adoptable reports whether Adopt may take over r's connection once its
// handler has taken it from net/http (Hijack) and answered r on it: r is
// a plain HTTP/1.1 request with no body (not a HEAD or a CONNECT), and
// the lane is attached and open. A request with a body is not taken:
// net/http may have left some of it unread (it gives up past 256 KiB and
// closes), and the lane would read the rest as requests. Take asks the
// same, and more of the answer, which Adopt's caller writes itself.
func (l *Lane) Adoptable(r *http.Request) bool {
	if l.srv.Load() == nil || r.Method == http.MethodHead || r.Method == http.MethodConnect ||
		r.ProtoMajor != 1 || r.ProtoMinor != 1 || r.Close || r.TLS != nil ||
		r.ContentLength != 0 || len(r.TransferEncoding) != 0 || r.Context().Value(noLaneKey{}) != nil {
		return false
	}
	return l.Open()
}

// Open reports whether the lane is attached and not closed: Adopt would
// take a connection now.
func (l *Lane) Open() bool { return l.srv.Load() != nil && !l.isClosed() }

// Adopt serves the next requests of nc, a connection a handler took over
// (Hijack) for a request Adoptable allowed, once it has written its
// complete answer there and stopped reading: pending are bytes it read
// past the request and that come first. It reports false, and leaves nc
// to the caller, if the lane is closed; true: nc is the lane's, served,
// or closed if the lane closed meanwhile.
func (l *Lane) Adopt(nc net.Conn, pending []byte) bool {
	s := l.srv.Load()
	if s == nil || l.isClosed() {
		return false
	}
	l.adopt(s, nc, bufio.NewReaderSize(nc, laneReadBuffer), pending)
	return true
}

// laneReadBuffer is the read buffer of a connection Adopt takes: net/http's.
const laneReadBuffer = 4 << 10

// adopt serves nc on a lane goroutine, reading through br: pending first,
// then what a connection given back earlier still had pending, then the
// socket, one layer over the connection however often it goes back and
// forth. A closed lane closes nc.
func (l *Lane) adopt(s *laneServer, nc net.Conn, br *bufio.Reader, pending []byte) {
	if prev, ok := nc.(*replayConn); ok {
		pending = append(pending, prev.pending...)
		nc = prev.Conn
	}
	lc := &laneConn{nc: nc, br: br, remote: nc.RemoteAddr().String()}
	if len(pending) > 0 {
		lc.src = &replayConn{Conn: nc, pending: pending}
		br.Reset(lc.src)
	} else {
		br.Reset(nc)
	}
	if !l.add(lc) {
		nc.Close()
		return
	}
	go l.serve(s, lc)
}

// laneKey marks the context of a request a lane serves.
type laneKey struct{}

// laneCtx is the context of a request a lane serves: its own, ended
// with it, as net/http's is (what a handler hangs on it, a cancel or an
// AfterFunc, goes with the request rather than piling up on the
// lane's), which knows the request's connection under laneKey and, as
// KeepConn gives it to net/http's requests, connKey (ClientGone peeks at
// it). A handler asks for them a few times a request: here they are
// found in the request's own context, where a chain of contexts had them
// a few objects away, each a cache miss on a node of thousands of
// connections.
type laneCtx struct {
	context.Context // the request's, canceled when it ends
	lc              *laneConn
}

func (c *laneCtx) Value(key any) any {
	switch key.(type) {
	case laneKey:
		return c.lc
	case connKey:
		return c.lc.nc
	}
	return c.Context.Value(key)
}

// noLaneKey marks the context of a connection no lane takes over.
type noLaneKey struct{}

// InLane reports whether r is served by a Lane.
func InLane(r *http.Request) bool { return r.Context().Value(laneKey{}) != nil }

// LaneNote returns the note that r's connection keeps for its requests'
// handlers, or nil when r is not served by a Lane. A handler that serves
// a client's requests one after another on one connection (a poll)
// leaves there what lets it serve the next one sooner. Only the handler
// of the connection's request being served reads or writes it; it goes
// with the connection (and does not follow it back to net/http or into
// another lane).
func LaneNote(r *http.Request) *any {
	if lc, ok := r.Context().Value(laneKey{}).(*laneConn); ok {
		return &lc.note
	}
	return nil
}

// Served is how many requests the lane has answered; Returned, how many
// connections it gave back to net/http.
func (l *Lane) Served() uint64   { return l.served.Load() }
func (l *Lane) Returned() uint64 { return l.returned.Load() }

// Close stops the lane: its listener closes (the server's Serve on it
// returns), connections waiting for their next request close, and
// those serving one close once it is answered. It waits for the lane's
// goroutines until ctx ends, then closes every connection it still has.
func (l *Lane) Close(ctx context.Context) {
	l.mu.Lock()
	l.closed = true
	var idle []*laneConn
	for lc := range l.conns {
		if !lc.busy {
			idle = append(idle, lc)
		}
	}
	l.mu.Unlock()
	if s := l.srv.Load(); s != nil {
		s.ln.Close()
		s.cancel()
	}
	for _, lc := range idle {
		lc.nc.Close()
	}
	done := make(chan struct{})
	go func() { l.wg.Wait(); close(done) }()
	select {
	case <-done:
		return
	case <-ctx.Done():
	}
	l.mu.Lock()
	for lc := range l.conns {
		lc.nc.Close()
	}
	l.mu.Unlock()
	<-done
}

// laneConn is one connection a lane serves.
type laneConn struct {
	nc     net.Conn      // the connection itself; static after construction.
	br     *bufio.Reader // reads nc, after src's bytes; static after construction.
	src    *replayConn   // nil, or what net/http had read and not served; static after construction.
	remote string        // nc.RemoteAddr(); static after construction.
	busy   bool          // serving a request; guarded by Lane.mu.
	// readBy and writeBy are the read and write deadlines last set on nc,
	// so that each is set again only when it has to be (within). Owned
	// by the lane's goroutine.
	readBy, writeBy laneDeadline
	// cred is the credential the connection's requests last proved
	// through an Authenticator's cache. Owned by the lane's goroutine.
	cred laneCred
	// report is the Report layer of the request being served, set by
	// Report and read by reportUser on the request's goroutine: on a lane
	// it goes here rather than into a new context and request copy.
	// Emptied after each request, and after a panic; owned by the lane's
	// goroutine.
	report *reportWriter
	// user is the user its requests last reported (reportUser), for
	// the next one's report to point at. Owned by the lane's goroutine.
	user *string
	// note is what the handler of the connection's last request left for
	// the next one (LaneNote). Owned by the lane's goroutine.
	note any
}

// add registers lc and starts its goroutine's count, unless the lane is
// closed.
func (l *Lane) add(lc *laneConn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	if l.conns == nil {
		l.conns = make(map[*laneConn]struct{})
	}
	l.conns[lc] = struct{}{}
	l.wg.Add(1)
	return true
}

// setBusy marks lc serving a request or waiting for one. It reports false
// once the lane is closed: an idle connection then ends.
func (l *Lane) setBusy(lc *laneConn, busy bool) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	lc.busy = busy
	return !l.closed
}

// isClosed reports whether Close has been called: answers from then on
// say Connection: close, as net/http's do once it shuts down.
func (l *Lane) isClosed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

// closeGently closes a connection whose last answer said Connection:
// close as net/http does: the write side first, then what the client
// still sends is read and dropped for a moment (at most 64 KiB, 500
// ms), so that the close does not reset the connection before the
// client has read the answer.
func closeGently(nc net.Conn) {
	if cw, ok := nc.(closeWriter); ok && cw.CloseWrite() == nil {
		_ = nc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		_, _ = io.Copy(io.Discard, io.LimitReader(nc, 64<<10))
	}
	nc.Close()
}

// deadlineSlack is how much further than its timeout a lane sets a
// deadline, so that it is set again once per slack rather than once per
// request: setting a deadline costs about 0.5 µs (a timer's update),
// and a busy poll client asks several times a second. A lane's idle
// and write timeouts are so each up to an eighth longer than set.
func deadlineSlack(d time.Duration) time.Duration { return d / 8 }

// laneDeadline is a deadline a lane last set on its connection; zero:
// none.
type laneDeadline struct{ by time.Time }

// within makes the deadline d to d plus its slack from now (none if d is
// 0), through set, setting it only if the one set is not already there:
// sooner, or later (a header timeout longer than d).
func (dl *laneDeadline) within(set func(time.Time) error, now time.Time, d time.Duration) {
	var want time.Time
	if d > 0 {
		if !dl.by.IsZero() && !dl.by.Before(now.Add(d)) && !dl.by.After(now.Add(d+deadlineSlack(d))) {
			return
		}
		want = now.Add(d + deadlineSlack(d))
	} else if dl.by.IsZero() {
		return
	}
	dl.at(set, want)
}

// at sets the deadline to t through set.
func (dl *laneDeadline) at(set func(time.Time) error, t time.Time) {
	dl.by = t
	_ = set(t)
}

// drop forgets lc.
func (l *Lane) drop(lc *laneConn) {
	l.mu.Lock()
	delete(l.conns, lc)
	l.mu.Unlock()
}

// serve reads and serves lc's requests until the connection ends, goes
// back to net/http, or is taken by a handler (Hijack).
func (l *Lane) serve(s *laneServer, lc *laneConn) {
	defer l.wg.Done()
	defer l.drop(lc)
	var w *laneWriter             // the request being served
	var cancel context.CancelFunc // ends its context
	defer func() {
		// As net/http does: a handler's panic ends its connection (unless
		// the handler has taken it), not the process;
		// http.ErrAbortHandler does so quietly.
		if err := recover(); err != nil {
			if w == nil || !w.hijacked {
				lc.nc.Close()
			}
			// What the request held goes with it, as after an answer.
			if cancel != nil {
				cancel()
			}
			lc.report = nil
			if w != nil {
				w.release()
			}
			if err != http.ErrAbortHandler {
				s.logf("http: panic serving %v on a lane: %v", lc.remote, err)
			}
		}
	}()
	// The connection's own context, under the lane's, as net/http has
	// one a connection: each request's context is made under it, so
	// that making and ending one locks only this connection's. Made
	// under the lane's, they all took one mutex, twice a request; on a
	// node behind its polls, a thread put off the core while holding it
	// (two Go threads share one core) held up every other request that
	// began or ended meanwhile: 1,700 waits a second, a median of 4 ms
	// and up to 24 ms, in a broadcast to 5,000 poll clients.
	connCtx, endConn := context.WithCancel(s.ctx)
	defer endConn()
	hr := new(bytes.Reader)
	// One header map for the connection's answers, emptied for each: the
	// handler is done with it when it returns (a poll that parks copies
	// it out first, then takes the connection away), and finish has
	// written it before the next request.
	header := make(http.Header)
	var grownAt uintptr // stackAt() when the stack was last grown
	for {
		if !l.setBusy(lc, false) {
			lc.nc.Close()
			return
		}
		head, ok := l.readHead(s, lc)
		if !ok {
			lc.nc.Close()
			return
		}
		if !l.setBusy(lc, true) {
			lc.nc.Close()
			return
		}
		// Each request's own context, ended with it, as net/http's is:
		// what a handler hangs on it (a cancel, an AfterFunc) goes with
		// the request rather than piling up on the lane's.
		var rctx context.Context
		rctx, cancel = context.WithCancel(connCtx)
		req, ours := l.parse(&laneCtx{Context: rctx, lc: lc}, s, hr, head)
		if req == nil {
			cancel()
			l.giveBack(s, lc, ours)
			return
		}
		_, _ = lc.br.Discard(len(head))
		req.RemoteAddr = lc.remote
		clear(header)
		w = &laneWriter{lc: lc, header: header}
		if at := stackAt(); at != grownAt {
			growLaneStack() // in one step, while shallow
			grownAt = stackAt()
		}
		s.handler.ServeHTTP(w, req)
		lc.report = nil
		cancel()
		l.served.Add(1)
		if w.hijacked {
			return
		}
		if !w.finish(req, l.isClosed()) {
			closeGently(lc.nc)
			return
		}
	}
}

func (s *laneServer) logf(format string, args ...any) {
	if s.errorLog != nil {
		s.errorLog.Printf(format, args...)
		return
	}
	log.Printf(format, args...)
}

// readHead waits for lc's next request and returns its head (up to and
// including the blank line), still in lc's reader. It reports false if
// the connection ends or times out first. A head that does not fit the
// reader's buffer is returned as far as it came; parse sends it back.
func (l *Lane) readHead(s *laneServer, lc *laneConn) ([]byte, bool) {
	lc.readBy.within(lc.nc.SetReadDeadline, time.Now(), s.idleTimeout)
	if _, err := lc.br.Peek(1); err != nil {
		return nil, false
	}
	// A head that came whole with its first bytes, as a client's poll
	// does, sets no header timeout: it is set only to wait for the rest.
	// The deadline is left as it is once the head is in: nothing reads
	// the connection until the next head (a handler that takes the
	// connection clears it, and so does a give-back).
	for waiting := false; ; waiting = true {
		buf, _ := lc.br.Peek(lc.br.Buffered())
		if n := headEnd(buf); n > 0 {
			return buf[:n], true
		}
		if len(buf) >= lc.br.Size() || len(buf) > s.maxHead {
			return buf, true // too long for the lane: net/http judges it
		}
		if !waiting && s.headerTimeout > 0 {
			lc.readBy.at(lc.nc.SetReadDeadline, time.Now().Add(s.headerTimeout))
		}
		if _, err := lc.br.Peek(len(buf) + 1); err != nil {
			return nil, false
		}
	}
}

var crlfcrlf = []byte("\r\n\r\n")

// headEnd returns the length of the head that buf starts with, through
// its blank line, or 0 if it has not all come. A blank line ended by a
// bare LF (which net/http takes too) ends the head as well: parse then
// sends it back, rather than the lane waiting for a CRLF that will not
// come.
func headEnd(buf []byte) int {
	i := bytes.Index(buf, []byte("\n\r\n")) // the CRLF blank line, after a line's LF
	j := bytes.Index(buf, []byte("\n\n"))
	switch {
	case i < 0 && j < 0:
		return 0
	case i >= 0 && (j < 0 || i < j):
		return i + 3
	default:
		return j + 2
	}
}

// laneReaders parse request heads.
var laneReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}

// parse returns the request in head, with ctx, if the lane serves it,
// else nil and whether head is a GET of a lane route all the same.
func (l *Lane) parse(ctx context.Context, s *laneServer, hr *bytes.Reader, head []byte) (*http.Request, bool) {
	route, ours := l.names(head)
	if !ours || !bytes.HasSuffix(head, crlfcrlf) || len(head) > s.maxHead || !plainHead(head) {
		return nil, ours
	}
	if req := quickRequest(ctx, head, route); req != nil {
		return req, true
	}
	hr.Reset(head)
	br := laneReaders.Get().(*bufio.Reader)
	br.Reset(hr)
	req, err := http.ReadRequest(br)
	rest := hr.Len() + br.Buffered() // the head ends the request: nothing may be left
	br.Reset(nil)
	laneReaders.Put(br)
	if err != nil || rest != 0 || !serverHeader(req.Header) {
		return nil, true
	}
	// ReadRequest has moved Host out of the header into req.Host, the
	// first one's value; net/http refuses a request with none or several.
	if req.Method != http.MethodGet || req.ProtoMajor != 1 || req.ProtoMinor != 1 || req.URL.Host != "" ||
		!slices.Contains(l.paths, req.URL.Path) || hostLines(head) != 1 || !plainHost(req.Host) ||
		req.ContentLength != 0 || len(req.TransferEncoding) != 0 || req.Header["Content-Length"] != nil ||
		req.Header["Expect"] != nil || req.Header["Upgrade"] != nil {
		return nil, true
	}
	return req.WithContext(ctx), true
}

// serverHeader reports whether net/http's server takes a request with
// header h as http.ReadRequest read it: the server also refuses a name
// that is not a token and a value with control bytes (400), which
// ReadRequest keeps. A name such as "Content-Length " (a space before
// the colon) is the one that matters: ReadRequest keeps it as another
// header, so the request has no body to it, while a front proxy that
// reads it as the length forwards what follows as its body; served here,
// those bytes would be served as the connection's next request.
func serverHeader(h http.Header) bool {
	for name, values := range h {
		if !httpguts.ValidHeaderFieldName(name) {
			return false
		}
		for _, v := range values {
			if !httpguts.ValidHeaderFieldValue(v) {
				return false
			}
		}
	}
	return true
}

// names reports whether head's request line is a GET of a lane route,
// its path escaped or not (net/http routes "/p%6Fll" as "/poll"), and
// the route when its path is the route as it is, unescaped (""
// otherwise).
func (l *Lane) names(head []byte) (route string, ours bool) {
	target, ok := bytes.CutPrefix(head, []byte("GET "))
	if !ok {
		return "", false
	}
	if i := bytes.IndexAny(target, " \r\n"); i >= 0 {
		target = target[:i]
	}
	path, _, _ := bytes.Cut(target, []byte("?"))
	if bytes.IndexByte(path, '%') >= 0 {
		p, err := url.PathUnescape(string(path))
		if err != nil {
			return "", false
		}
		return "", slices.Contains(l.paths, p)
	}
	for _, p := range l.paths {
		if string(path) == p {
			return p, true
		}
	}
	return "", false
}

// hostLines counts the header lines of head named Host, in any case.
func hostLines(head []byte) int {
	n := 0
	_, rest, _ := bytes.Cut(head, []byte("\r\n")) // the request line
	for len(rest) > 0 {
		var line []byte
		line, rest, _ = bytes.Cut(rest, []byte("\r\n"))
		if name, _, ok := bytes.Cut(line, []byte(":")); ok && bytes.EqualFold(bytes.TrimSpace(name), []byte("host")) {
			n++
		}
	}
	return n
}

// plainHead reports whether head holds only printable ASCII, tabs and
// line ends: anything else (other controls, bytes past ASCII) goes to
// net/http, whose checks decide.
func plainHead(head []byte) bool {
	for _, b := range head {
		if (b < 0x20 && b != '\r' && b != '\n' && b != '\t') || b >= 0x7f {
			return false
		}
	}
	return true
}

// plainHost reports whether h is a host[:port] of letters, digits and
// ".-:[]" only.
func plainHost(h string) bool {
	if h == "" {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '.' || c == '-' || c == ':' || c == '[' || c == ']') {
			return false
		}
	}
	return true
}

// giveBack hands lc, with what it has read and not served, to the
// server's Serve on the lane's listener; for good if it was a request of
// the lane's routes (noLane).
func (l *Lane) giveBack(s *laneServer, lc *laneConn, noLane bool) {
	l.returned.Add(1)
	s.serving.Do(func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if !l.closed {
			l.wg.Go(func() { _ = s.srv.Serve(s.ln) })
		}
	})
	// net/http sets the deadlines it wants; the lane's would outlive it.
	_ = lc.nc.SetDeadline(time.Time{})
	var pending []byte
	if n := lc.br.Buffered(); n > 0 {
		b, _ := lc.br.Peek(n)
		pending = append(pending, b...)
	}
	if lc.src != nil {
		pending = append(pending, lc.src.pending...)
	}
	c := &replayConn{Conn: lc.nc, pending: pending, noLane: noLane}
	if !s.ln.give(c) {
		lc.nc.Close()
	}
}

// laneWriter is the ResponseWriter of a request a lane serves: it keeps
// the answer and writes it, head and body, in one write.
type laneWriter struct {
	lc       *laneConn
	header   http.Header
	status   int
	body     *[]byte // from laneBodies; nil until written to
	hijacked bool
}

var laneBodies = sync.Pool{New: func() any { return new([]byte) }}

// maxLaneBody bounds the buffers laneBodies keeps.
const maxLaneBody = 256 << 10

func (w *laneWriter) Header() http.Header { return w.header }

func (w *laneWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 && !w.hijacked {
		w.status = code
	}
}

func (w *laneWriter) Write(p []byte) (int, error) {
	if w.hijacked {
		return 0, http.ErrHijacked
	}
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if w.body == nil {
		w.body = laneBodies.Get().(*[]byte)
	}
	*w.body = append(*w.body, p...)
	return len(p), nil
}

// Hijack hands the connection to the handler; the lane lets go of it.
func (w *laneWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.hijacked {
		return nil, nil, http.ErrHijacked
	}
	w.hijacked = true
	w.release()
	_ = w.lc.nc.SetDeadline(time.Time{})
	var nc net.Conn = w.lc.nc
	if w.lc.src != nil && len(w.lc.src.pending) > 0 {
		nc = w.lc.src // what the reader has not yet taken comes first
	}
	return nc, bufio.NewReadWriter(w.lc.br, bufio.NewWriter(w.lc.nc)), nil
}

// finish writes the answer and reports whether the connection carries on.
func (w *laneWriter) finish(req *http.Request, closing bool) bool {
	defer w.release()
	status := w.status
	if status == 0 {
		status = http.StatusOK
	}
	var body []byte
	if w.body != nil {
		body = *w.body
	}
	keep := !req.Close && !closing && w.header.Get("Connection") == ""
	if !keep {
		w.header.Set("Connection", "close")
	}
	_, typed := w.header["Content-Type"]
	if !typed && len(body) > 0 && w.header.Get("Content-Encoding") == "" { // as net/http sniffs
		w.header.Set("Content-Type", http.DetectContentType(body))
	}
	w.header.Del("Content-Length")
	out := laneBodies.Get().(*[]byte)
	b := append((*out)[:0], "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, ' ')
	b = append(b, http.StatusText(status)...)
	b = append(b, "\r\n"...)
	hw := SliceWriter{B: b}
	_ = w.header.Write(&hw) // what net/http writes: sorted, values cleaned of line breaks
	b = hw.B
	now := time.Now()
	if _, ok := w.header["Date"]; !ok {
		b = AppendDate(b, now)
	}
	b = append(b, "Content-Length: "...)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	b = append(b, "\r\n\r\n"...)
	b = append(b, body...)
	w.lc.writeBy.within(w.lc.nc.SetWriteDeadline, now, laneWriteTimeout)
	_, err := w.lc.nc.Write(b)
	*out = b
	putLaneBody(out)
	return err == nil && keep
}

// dateLine is a Date header line, "Date: …\r\n", and the second it names.
type dateLine struct {
	sec  int64
	line []byte
}

// laneDate is the Date line of the second answers were last written in:
// formatted once a second rather than once an answer.
var laneDate atomic.Pointer[dateLine]

// AppendDate appends the Date header line for now, "Date: …\r\n", to b:
// the lane's answers and a parked poll's, formatted once a second.
func AppendDate(b []byte, now time.Time) []byte {
	sec := now.Unix()
	d := laneDate.Load()
	if d == nil || d.sec != sec {
		line := append([]byte("Date: "), now.UTC().Format(http.TimeFormat)...)
		d = &dateLine{sec: sec, line: append(line, "\r\n"...)}
		laneDate.Store(d)
	}
	return append(b, d.line...)
}

func (w *laneWriter) release() {
	if w.body != nil {
		putLaneBody(w.body)
		w.body = nil
	}
}

func putLaneBody(b *[]byte) {
	if cap(*b) > maxLaneBody {
		return
	}
	*b = (*b)[:0]
	laneBodies.Put(b)
}

// SliceWriter appends what is written to B; it never fails. It has
// WriteString, so that http.Header.Write copies no string.
type SliceWriter struct{ B []byte }

func (s *SliceWriter) Write(p []byte) (int, error) {
	s.B = append(s.B, p...)
	return len(p), nil
}

// WriteString spares http.Header.Write a copy of each string.
func (s *SliceWriter) WriteString(p string) (int, error) {
	s.B = append(s.B, p...)
	return len(p), nil
}

// replayConn is a connection whose reads take bytes already read from
// it first: one given back to net/http, or a lane's with what net/http
// had read. It wraps the connection itself, never another replayConn.
type replayConn struct {
	net.Conn
	pending []byte // read from Conn and not yet served; owned by the reader.
	noLane  bool   // no lane takes it over again; static after construction.
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// CloseWrite and ReadFrom are the connection's, so that net/http still
// half-closes a connection it refuses and sends files with sendfile.
func (c *replayConn) CloseWrite() error                   { return closeWrite(c.Conn) }
func (c *replayConn) ReadFrom(r io.Reader) (int64, error) { return readFrom(c.Conn, r) }

// NetConn is the connection underneath, for ClientGone and Cork (see
// tcpConn): without it, a client that closed a connection the lane had
// given back was never seen gone, and a leave it sent after stopping a
// stream's request no longer won over that request's joins.
func (c *replayConn) NetConn() net.Conn { return c.Conn }

type closeWriter interface{ CloseWrite() error }

// laneListener hands the connections a lane gives back to a server.
type laneListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newLaneListener() *laneListener {
	return &laneListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (ln *laneListener) Accept() (net.Conn, error) {
	select {
	case c := <-ln.conns:
		return c, nil
	case <-ln.done:
		return nil, net.ErrClosed
	}
}

func (ln *laneListener) Close() error {
	ln.once.Do(func() { close(ln.done) })
	return nil
}

func (ln *laneListener) Addr() net.Addr { return laneAddr{} }

// give hands c to the server; false once the listener is closed.
func (ln *laneListener) give(c net.Conn) bool {
	select {
	case ln.conns <- c:
		return true
	case <-ln.done:
		return false
	}
}

type laneAddr struct{}

func (laneAddr) Network() string { return "lane" }
func (laneAddr) String() string  { return "lane" }
