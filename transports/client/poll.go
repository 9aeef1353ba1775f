package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/chatd/chatd/core/protocol"
	"github.com/chatd/chatd/transports/inflate"
)

// shortAnswer is how fast an empty poll answer must come back for the
// client to count it as answered at once: the server did not hold it.
const shortAnswer = time.Second

// fastPause is the client's wait before its next poll after fast empty
// answers in a row (fast counts them): none after the first, which has
// a reason (a level change, a new user stream), then 250 ms, doubling
// up to interval, so that a server that answers at once for no reason
// can never make the client spin. At level 3 the client waits the
// interval (shortPolling) instead.
func fastPause(fast int, interval time.Duration) time.Duration {
	if fast < 2 {
		return 0
	}
	return min(interval, 250*time.Millisecond<<min(fast-2, 16))
}

// pollAnswer is the body of a poll answer.
type pollAnswer = protocol.PollAnswer

// runPoll polls until the link ends. It is the link's reader goroutine.
// Each request resumes where the last answer ended: with that answer's
// cursor while the rooms are the same, and with since= from the
// positions otherwise (the first poll of a link, or after a Join).
func (l *link) runPoll() {
	c := l.c
	var (
		scratch   pollScratch
		cursor    string
		cursorFor string // the rooms the cursor was issued for
		// controlTag names the control of the last answer that carried
		// one: the server leaves the control out of answers while it is
		// the one in force.
		controlTag string
		fast       int // answers in a row that came at once with no events
		badChunks  int // deflated answers in a row that could not be read
	)
	// The token in a header, as on the other tiers: a Go client can set
	// one, and what a ticket opens writes nothing, not even a remembered
	// join.
	scratch.authz = bearer(l.tok)["Authorization"]
	for l.ctx.Err() == nil {
		u, key, n := c.pollQuery(l, scratch.url[:0], cursor, cursorFor)
		if n == 0 && !c.cfg.UserEvents {
			l.markUp() // nothing to poll for; wait for a Join
			select {
			case <-l.kick:
				continue
			case <-l.ctx.Done():
				return
			}
		}
		if controlTag != "" {
			u = append(u, "&control_tag="...)
			u = append(u, url.QueryEscape(controlTag)...)
		}
		if c.cfg.PollDeflate {
			// The stream goes on from the last answer when this poll
			// carries on from its cursor; otherwise a new one starts.
			if cursor != "" && scratch.z.Len() > 0 {
				u = append(u, "&deflate=1"...)
			} else {
				u = append(u, "&deflate=new"...)
			}
		}
		u = append(u, "&"+batchQuery...)
		scratch.url = u
		start := c.cfg.Now()
		ans, err := l.pollOnce(string(u), &scratch)
		if err != nil {
			switch {
			case l.ctx.Err() != nil:
				return
			case errors.Is(err, errKicked):
				continue
			case errors.Is(err, errBadChunk) && badChunks < 2:
				// Dropped unread: the same cursor again, on a new stream
				// (scratch.z is empty). A third in a row ends the link.
				badChunks++
				continue
			}
			l.end.err = err
			return
		}
		badChunks = 0
		l.touch()
		for _, e := range ans.Events {
			c.handle(l, e)
		}
		scratch.envs.done(ans.Events)
		if l.end.code != 0 {
			return // a disconnect envelope: Run decides what next
		}
		if ans.Control != nil {
			c.onControl(l, *ans.Control)
			controlTag = ans.ControlTag
		}
		l.markUp() // the first answer connects the tier
		cursor, cursorFor = ans.Cursor, key
		switch {
		case l.shortPolling():
			fast = 0
			if !l.pause(l.interval()) {
				return
			}
		case len(ans.Events) == 0 && c.cfg.Now().Sub(start) < shortAnswer:
			fast++
			if d := fastPause(fast, l.interval()); d > 0 && !l.pause(d) {
				return
			}
		default:
			fast = 0
		}
	}
}

// pollQuery is subscribe for a poll: it appends the poll's subscription
// to u, and returns u, the rooms' key (their names joined with commas)
// and how many rooms there are. The subscription is rooms=, then
// cursor= when cursor was issued for the same rooms (cursorFor is their
// key), otherwise since= from the positions; then level=, the level this
// client knows, so that a poll answers at once with the new control if
// the server has moved since. The positions are read only when the
// cursor cannot serve: the common poll makes no map and no copy of the
// rooms.
func (c *Client) pollQuery(l *link, u []byte, cursor, cursorFor string) ([]byte, string, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	l.subscribed = true
	key := strings.Join(c.rooms, ",")
	if cursor != "" && key == cursorFor {
		u = append(u, "rooms="...)
		u = append(u, url.QueryEscape(key)...)
		u = append(u, "&cursor="...)
		u = append(u, url.QueryEscape(cursor)...)
	} else {
		rooms, since := c.positions()
		u = append(u, subscriptionQuery(rooms, since)...)
	}
	u = append(u, "&level="...)
	u = strconv.AppendInt(u, int64(c.offer.Level), 10)
	return u, key, len(c.rooms)
}

var errKicked = errors.New("client: poll restarted for a new room")

// pollOnce makes one poll request, with the query u. A Join during the
// request cancels it (errKicked); its answer is not needed, since the
// next poll resumes from the positions.
func (l *link) pollOnce(u string, s *pollScratch) (pollAnswer, error) {
	c := l.c
	ctx, cancel := context.WithTimeout(l.ctx, c.cfg.PollHold+c.cfg.ConnectTimeout)
	defer cancel()
	l.pollMu.Lock()
	kicked := l.kicked
	l.kicked = false
	if !kicked {
		l.pollCancel = cancel
	}
	l.pollMu.Unlock()
	if kicked {
		return pollAnswer{}, errKicked
	}
	ans, err := l.get(ctx, u, s)
	l.pollMu.Lock()
	kicked = l.kicked
	l.kicked, l.pollCancel = false, nil
	l.pollMu.Unlock()
	if kicked {
		return pollAnswer{}, errKicked
	}
	return ans, err
}

// kickPoll makes the poll in flight, or the next one, start over with the
// current rooms. It runs on the caller of Join.
func (l *link) kickPoll() {
	l.pollMu.Lock()
	l.kicked = true
	if l.pollCancel != nil {
		l.pollCancel()
	}
	l.pollMu.Unlock()
	signal(l.kick)
}

// get makes the poll request with the query u and decodes its answer,
// into s's buffer and envelope array.
func (l *link) get(ctx context.Context, u string, s *pollScratch) (pollAnswer, error) {
	req, err := s.request(ctx, l.c, u)
	if err != nil {
		return pollAnswer{}, err
	}
	if ms := l.c.takeRTT(); ms > 0 {
		req.Header.Set(rttHeader, Poll+"="+strconv.FormatInt(ms, 10))
	}
	resp, err := l.c.doPoll(req)
	if err != nil {
		return pollAnswer{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return pollAnswer{}, serverError(resp)
	}
	body, err := readBodyInto(s.body, resp, maxFrame)
	if err != nil {
		return pollAnswer{}, err
	}
	if cap(body) <= maxKeptBody {
		s.body = body[:0]
	}
	if body, err = s.undeflate(body); err != nil {
		return pollAnswer{}, err
	}
	ans, err := decodePollAnswer(&s.envs, body, l.c.decodeOptions())
	if err != nil {
		return pollAnswer{}, fmt.Errorf("client: bad poll answer: %w", err)
	}
	return ans, nil
}

// pollScratch is what a poll link's reader keeps from one poll to the
// next: the buffer its request's URL is built in, the buffer the
// answer's body is read into and the envelope array the answer decodes
// into. A client polling as fast as it is answered made all three
// afresh for each answer (and the positions and a copy of the rooms,
// which pollQuery now reads only when the cursor cannot serve): in the
// load tool's broadcast to 5,000 poll clients, the tool allocated 3.1 GB
// in its first 40 s with them, 1.7 GB with them kept. The envelopes
// decoded hold copies, never the body's bytes, so the body's buffer is
// free once the answer is decoded.
type pollScratch struct {
	url   []byte
	body  []byte
	plain []byte         // a deflated answer's JSON (undeflate)
	z     inflate.Stream // the answers' deflate stream (Config.PollDeflate)
	envs  frameScratch
	tmpl  *http.Request // the link's polls but for their query, context and header; nil until the first
	key   []string      // the X-Chat-Client header's value
	authz []string      // the Authorization header's value; nil: none
}

// request returns the GET of the poll URL with the query q, bound to ctx.
// Every poll of a link is the same request but for its query, so it is
// built once, as a template: each poll then costs a copy of the request
// and of its URL, and a header of its own (a RoundTripper that adds to a
// request's header, against http.RoundTripper's rule, must not add to
// the next poll's too). In 15 s of the load tool's broadcast to 5,000
// poll clients the copies and headers were 170 MB, where building each
// request afresh (NewRequestWithContext, its URL parsed, and Header.Set)
// had been 303 MB of the 1,266 the tool allocated.
func (s *pollScratch) request(ctx context.Context, c *Client, q string) (*http.Request, error) {
	if s.tmpl == nil {
		req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, c.base+"/v1/poll", nil)
		if err != nil {
			return nil, err
		}
		req.Header = nil // each poll's own
		s.tmpl = req
		s.key = []string{c.key}
	}
	req := s.tmpl.WithContext(ctx)
	u := *s.tmpl.URL
	u.RawQuery = q
	req.URL = &u
	// The server counts this client, not its polls. A RoundTripper that
	// appends to the value gets a new array (its capacity is its length);
	// one that writes into it breaks that rule outright.
	req.Header = http.Header{canonicalClientHeader: s.key[:1:1]}
	if s.authz != nil {
		req.Header["Authorization"] = s.authz[:1:1]
	}
	return req, nil
}

// canonicalClientHeader is clientHeader as http.Header keys it.
var canonicalClientHeader = http.CanonicalHeaderKey(clientHeader)

// doPoll sends a poll request. A client of plain requests (no cookie jar,
// no timeout, no user in the URL) gives it to the Transport itself,
// rather than through http.Client.Do, which copies the request's header
// and URL for every request in case of a redirect (215 MB of the 1,266
// above), and answers as Do would: its errors wrapped in a *url.Error,
// a plain HTTP answer to an https URL as http.ErrSchemeMismatch. An
// answer that redirects (with a Location) is asked again through Do,
// which follows it as it would have, and so is every poll of this
// Client after it: where one poll was redirected, the next will be.
func (c *Client) doPoll(req *http.Request) (*http.Response, error) {
	hc := c.http
	if hc.Jar != nil || hc.Timeout != 0 || req.URL.User != nil || c.pollViaDo.Load() {
		return hc.Do(req)
	}
	rt := hc.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		if resp != nil && resp.Body != nil {
			resp.Body.Close()
		}
		var rh tls.RecordHeaderError
		if errors.As(err, &rh) && string(rh.RecordHeader[:]) == "HTTP/" {
			err = http.ErrSchemeMismatch
		}
		return nil, &url.Error{Op: "Get", URL: req.URL.Redacted(), Err: err}
	}
	switch {
	case resp == nil:
		err = fmt.Errorf("http: RoundTripper implementation (%T) returned a nil *Response with a nil error", rt)
	case resp.Body == nil && resp.ContentLength > 0:
		err = fmt.Errorf("http: RoundTripper implementation (%T) returned a nil *Response.Body with a non-zero Response.ContentLength", rt)
	}
	if err != nil {
		return nil, &url.Error{Op: "Get", URL: req.URL.Redacted(), Err: err}
	}
	if resp.Body == nil {
		resp.Body = http.NoBody
	}
	if isRedirect(resp.StatusCode) && resp.Header.Get("Location") != "" {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		resp.Body.Close()
		c.pollViaDo.Store(true)
		return hc.Do(req)
	}
	return resp, nil
}

// isRedirect reports whether code is one that http.Client follows.
func isRedirect(code int) bool {
	switch code {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
		http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		return true
	}
	return false
}

// maxKeptBody is the largest answer buffer a poll link keeps for the
// next answer, so that a catch-up's big answer is not held while the
// client idles. The envelope array is kept up to maxScratch, as a
// stream's reader keeps it.
const maxKeptBody = 32 << 10

// readBodyInto reads resp's body, at most limit bytes, into buf's array
// while the body fits it. A body of a stated length (a poll answer's)
// goes into one buffer of that size, so that an answer of dozens of
// messages is not read by doubling a buffer and copying it; one of
// unknown length (a gzipped answer, which the HTTP client inflates) is
// grown from buf as io.ReadAll grows its own.
func readBodyInto(buf []byte, resp *http.Response, limit int64) ([]byte, error) {
	b := buf[:0]
	if n := resp.ContentLength; n >= 0 && n <= limit {
		if int64(cap(b)) < n {
			b = make([]byte, n)
		}
		b = b[:n]
		if _, err := io.ReadFull(resp.Body, b); err != nil {
			return nil, err
		}
		return b, nil
	}
	r := io.LimitReader(resp.Body, limit)
	if cap(b) == 0 {
		b = make([]byte, 0, 512)
	}
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)] // room to read into
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// decodePollAnswer parses a poll answer: on decodeFrameInto's fast path
// when it has the shape the server writes (protocol.DecodePollAnswerFast),
// otherwise with encoding/json, its events still through decodeFrameInto;
// o are the options for the events (Config.CountReads, CountChanges) on
// either path.
// With encoding/json alone, decoding answers was a third of the load
// tool's CPU under a broadcast to 5000 poll clients.
func decodePollAnswer(s *frameScratch, body []byte, o protocol.FastOptions) (pollAnswer, error) {
	arr := s.array()
	if a, ok := protocol.DecodePollAnswerFastInto(arr, body, o); ok {
		s.keep(a.Events)
		return a, nil
	}
	clear(arr[:cap(arr)]) // what the fast path wrote before it gave up, which the fallback may not overwrite
	var wire struct {
		Events     json.RawMessage    `json:"events"`
		Cursor     string             `json:"cursor"`
		Control    *protocol.Envelope `json:"control"`
		ControlTag string             `json:"control_tag"`
	}
	if err := json.Unmarshal(body, &wire); err != nil {
		return pollAnswer{}, err
	}
	ans := pollAnswer{Cursor: wire.Cursor, Control: wire.Control, ControlTag: wire.ControlTag}
	if len(wire.Events) > 0 && string(wire.Events) != "null" {
		if wire.Events[0] != '[' {
			return pollAnswer{}, fmt.Errorf("events is not a list")
		}
		events, err := s.decode(wire.Events, o)
		if err != nil {
			return pollAnswer{}, err
		}
		ans.Events = events
	}
	return ans, nil
}

// shortPolling reports whether the server asked for short polling
// (degradation level 3).
func (l *link) shortPolling() bool {
	l.c.mu.Lock()
	defer l.c.mu.Unlock()
	return l.c.offer.Level >= 3
}

// interval is the offer's poll_interval_ms.
func (l *link) interval() time.Duration {
	l.c.mu.Lock()
	defer l.c.mu.Unlock()
	return msDuration(l.c.offer.PollIntervalMS)
}

// pause waits d, or less if a Join needs a new poll. It reports false if
// the link ended.
func (l *link) pause(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-l.kick: // the next pollOnce starts over
	case <-l.ctx.Done():
		return false
	}
	return true
}

// errBadChunk reports a deflated poll answer that could not be read: the
// poll goes again from the same cursor, on a new stream.
var errBadChunk = errors.New("client: bad deflated poll answer")

// undeflate returns the JSON of a poll answer's body: the body itself
// when it is JSON (it begins with '{': not deflated, so the deflate
// stream, if any, ends), or the chunk of a deflated answer (deflate=):
// "c" or "n", the JSON's length, a space, its CRC-32 in 8 hex digits, a
// line feed and the deflate bytes, inflated against the stream ("c") or
// a new one ("n"). A chunk that does not inflate to that JSON is
// errBadChunk, and ends the stream.
func (s *pollScratch) undeflate(body []byte) ([]byte, error) {
	if len(body) == 0 || body[0] == '{' {
		s.z.Reset()
		return body, nil
	}
	fail := func(format string, args ...any) ([]byte, error) {
		s.z.Reset()
		return nil, fmt.Errorf("%w: "+format, append([]any{errBadChunk}, args...)...)
	}
	line, rest, ok := bytes.Cut(body, []byte("\n"))
	if !ok || len(line) < 2 || len(line) > 24 || (line[0] != 'c' && line[0] != 'n') {
		return fail("neither JSON nor a deflated chunk")
	}
	length, sum, ok := bytes.Cut(line[1:], []byte(" "))
	size, err := strconv.Atoi(string(length))
	if !ok || err != nil || size < 0 || size > maxFrame {
		return fail("a chunk of %q bytes", length)
	}
	crc, err := strconv.ParseUint(string(sum), 16, 32)
	if err != nil || len(sum) != 8 {
		return fail("checksum %q", sum)
	}
	if line[0] == 'n' {
		s.z.Reset()
	} else if s.z.Len() == 0 {
		return fail("a chunk goes on from a stream this client has not")
	}
	plain, err := s.z.Inflate(s.plain[:0], rest, size)
	if err != nil {
		return fail("%v", err)
	}
	if cap(plain) <= maxKeptBody {
		s.plain = plain
	}
	if crc32.ChecksumIEEE(plain) != uint32(crc) {
		return fail("its JSON does not match its checksum")
	}
	return plain, nil
}
