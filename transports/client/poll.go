package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/chatd/chatd/core/protocol"
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
		cred      string
		credUntil time.Time
		cursor    string
		cursorFor string // the rooms the cursor was issued for
		renewed   bool   // the credential was renewed after a 401
		// controlTag names the control of the last answer that carried
		// one: the server leaves the control out of answers while it is
		// the one in force.
		controlTag string
		fast       int // answers in a row that came at once with no events
	)
	for l.ctx.Err() == nil {
		if cred == "" || c.cfg.Now().After(credUntil) {
			var ttl time.Duration
			var err error
			if cred, ttl, err = l.credential(renewed); err != nil {
				l.end.err = err
				return
			}
			credUntil = c.cfg.Now().Add(ttl)
		}
		rooms, since := c.subscribe(l)
		if len(rooms) == 0 && !c.cfg.UserEvents {
			l.markUp() // nothing to poll for; wait for a Join
			select {
			case <-l.kick:
				continue
			case <-l.ctx.Done():
				return
			}
		}
		key := strings.Join(rooms, ",")
		q := subscriptionQuery(rooms, nil)
		if cursor != "" && key == cursorFor {
			q += "&cursor=" + url.QueryEscape(cursor)
		} else {
			q = subscriptionQuery(rooms, since)
		}
		// level= tells the server which level this client knows: if it has
		// moved since, the poll answers at once with the new control.
		c.mu.Lock()
		q += "&level=" + strconv.Itoa(c.offer.Level)
		c.mu.Unlock()
		if controlTag != "" {
			q += "&control_tag=" + url.QueryEscape(controlTag)
		}
		start := c.cfg.Now()
		ans, err := l.pollOnce(q + "&" + cred)
		if err != nil {
			switch {
			case l.ctx.Err() != nil:
				return
			case errors.Is(err, errKicked):
				continue
			case isUnauthorized(err) && !renewed:
				cred, renewed = "", true // the ticket may have expired; the token may not
				continue
			}
			l.end.err = err
			return
		}
		renewed = false
		l.touch()
		for _, e := range ans.Events {
			c.handle(l, e)
		}
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

var errKicked = errors.New("client: poll restarted for a new room")

// pollOnce makes one poll request. A Join during the request cancels it
// (errKicked); its answer is not needed, since the next poll resumes from
// the positions.
func (l *link) pollOnce(query string) (pollAnswer, error) {
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
	ans, err := l.get(ctx, query)
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

func (l *link) get(ctx context.Context, query string) (pollAnswer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, l.c.base+"/v1/poll?"+query+"&"+batchQuery, nil)
	if err != nil {
		return pollAnswer{}, err
	}
	req.Header.Set(clientHeader, l.c.key) // the server counts this client, not its polls
	l.c.reportRTT(req, Poll)
	resp, err := l.c.http.Do(req)
	if err != nil {
		return pollAnswer{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return pollAnswer{}, serverError(resp)
	}
	body, err := readBody(resp, maxFrame)
	if err != nil {
		return pollAnswer{}, err
	}
	ans, err := decodePollAnswer(body, l.c.decodeOptions())
	if err != nil {
		return pollAnswer{}, fmt.Errorf("client: bad poll answer: %w", err)
	}
	return ans, nil
}

// readBody reads resp's body, at most limit bytes: into one buffer of its
// size when the server says it (a poll answer does), so that an answer of
// dozens of messages is not read by doubling a buffer and copying it.
func readBody(resp *http.Response, limit int64) ([]byte, error) {
	if n := resp.ContentLength; n >= 0 && n <= limit {
		b := make([]byte, n)
		if _, err := io.ReadFull(resp.Body, b); err != nil {
			return nil, err
		}
		return b, nil
	}
	return io.ReadAll(io.LimitReader(resp.Body, limit))
}

// decodePollAnswer parses a poll answer: on decodeFrameInto's fast path
// when it has the shape the server writes (protocol.DecodePollAnswerFast),
// otherwise with encoding/json, its events still through decodeFrameInto;
// o are the options for the events (Config.CountReads) on either path.
// With encoding/json alone, decoding answers was a third of the load
// tool's CPU under a broadcast to 5000 poll clients.
func decodePollAnswer(body []byte, o protocol.FastOptions) (pollAnswer, error) {
	if a, ok := protocol.DecodePollAnswerFastWith(body, o); ok {
		return a, nil
	}
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
		events, err := decodeFrameInto(nil, wire.Events, o)
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
