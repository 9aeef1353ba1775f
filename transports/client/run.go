package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/chatd/chatd/core/protocol"
)

// Run connects and stays connected until ctx ends. It returns ctx's error
// then, or a permanent error earlier: a close with 4003 (forbidden, a
// *CloseError), the server's forbidden answer to the subscription, or an
// unauthorized answer that a new token did not fix. Any other failure is
// retried, with backoff with full jitter between connect cycles, and
// shown in State. Run may be called once; Events is closed when it
// returns.
//
// Each connect cycle calls Token, negotiates, and tries the offered tiers
// in preference order, each within ConnectTimeout; a tier that fails
// falls to the next at once. A tier counts as connected when its first
// server envelope arrives. When a live connection ends, the next cycle
// starts from the top preference again, unless the server or
// SwitchTransport named a tier; it first tries that one tier on the
// offer and token in hand, without Token or negotiate (see resume),
// unless the link ended on its credentials or as a dead link, or three
// links in a row went live that way.
func (c *Client) Run(ctx context.Context) error {
	if !c.started.CompareAndSwap(false, true) {
		return ErrRunning
	}
	if c.cfg.URL == "" || c.cfg.Token == nil {
		close(c.events)
		return errors.New("client: Config.URL and Config.Token are required")
	}
	// The client's own context, under which its links' and requests'
	// contexts come and go: each one made and ended adds itself to its
	// parent's list and takes itself off, under the parent's lock. Under
	// the caller's context, that would be one lock for every client that
	// shares it: when the load tool's 10,000 clients lost their server
	// at once, a goroutine dump found 7,068 of them queued on that one
	// lock to end their links.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	dctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.deliverLoop(dctx)
	}()
	err := c.loop(ctx)
	stop()
	wg.Wait()
	c.dropIdle()
	c.setState(func(s *State) { s.Connected, s.Reason = false, "stopped: "+err.Error() })
	return err
}

// loop is Run's connect loop.
func (c *Client) loop(ctx context.Context) error {
	attempt := 0    // connect cycles in a row that connected nowhere
	brief := 0      // backoffs in a row after live links, none of which lived Config.StableAfter
	rejected := 0   // unauthorized answers in a row
	prefer := ""    // the tier to try first in the next cycle
	inHand := false // the next cycle may start on the offer in hand (see resume)
	resumed := 0    // links in a row that went live on a resume
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		out, tier, err := c.connectCycle(ctx, prefer, inHand)
		prefer = ""
		if err != nil {
			return err
		}
		// A live link that ended without a word about its credentials
		// leaves an offer and a token in hand; a server that was only
		// down keeps them in hand until it answers. Not after a dead link
		// (the network, or a server whose heartbeat_ms changed, which no
		// control envelope carries), nor after maxResumes resumed links in
		// a row: then the next cycle negotiates.
		if out.connected {
			if resumed++; !out.resumed {
				resumed = 0
			}
		}
		inHand = (out.connected && !tokenEnded(out.end) && !errors.Is(out.end.err, errDeadLink) && resumed < maxResumes) ||
			(inHand && !out.connected && busy(out.end.err))
		if isUnauthorized(out.end.err) {
			// Token is asked again at the start of the next cycle; a
			// second refusal in a row is permanent.
			if rejected++; rejected >= 2 {
				return fmt.Errorf("client: token refused after a refresh: %w", out.end.err)
			}
			continue
		}
		rejected = 0
		if !out.connected {
			if errors.Is(out.end.err, errConnectTimeout) {
				c.dropIdle()
			}
			attempt++
			if err := c.wait(ctx, c.backoff(attempt-1), attempt, tier, out.end.err); err != nil {
				return err
			}
			continue
		}
		attempt = 0
		if out.lived >= c.cfg.StableAfter {
			brief = 0
		}
		if errors.Is(out.end.err, errDeadLink) {
			c.dropIdle() // pooled connections took the same dead path
		}
		next, delay, backedOff, err := c.afterLink(ctx, out, brief)
		if err != nil {
			return err
		}
		if backedOff {
			brief++
		}
		prefer = next
		if err := c.wait(ctx, delay, 0, tier, whyEnded(out)); err != nil {
			return err
		}
	}
}

// connectCycle gets a token, negotiates and tries the offered tiers. A
// failure to get a token or an offer is an outcome that did not connect;
// the error is permanent. With inHand, it first tries the offer and
// token it has (see resume).
func (c *Client) connectCycle(ctx context.Context, prefer string, inHand bool) (outcome, string, error) {
	if w := c.takeWant(""); w != "" {
		prefer = w
	}
	if inHand {
		if out, tier, done, err := c.resume(ctx, prefer); done {
			return out, tier, err
		}
	}
	tok, off, err := c.prepare(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return outcome{}, "", ctx.Err()
		}
		return outcome{end: ending{err: err}}, "", nil
	}
	if w := c.takeWant(""); w != "" {
		prefer = w
	}
	return c.cycle(ctx, c.order(off, prefer), tok, off)
}

// resume reconnects on the offer and token in hand, without Token or
// negotiate: once a live link has ended (the network, a restart, a
// move), the offer is as new as the last control envelope made it, and
// the server checks it again at the dial (a tier it no longer offers this
// user is refused) and greets the stream with the control in force. It
// tries the first tier of that offer in the client's order only. It is
// done when that tier connected, when the server is down or busy (the
// cycle backs off and resumes again), or on a permanent error;
// otherwise (refused, unauthorized, anything else) the cycle goes on
// with Token and negotiate, as it does when the tier asked for (a move,
// SwitchTransport) is not in the offer in hand. So a server that
// restarts under thousands of WebSocket clients answers one request a
// client instead of two, and Token is not called for each of them.
func (c *Client) resume(ctx context.Context, prefer string) (outcome, string, bool, error) {
	c.tokMu.Lock()
	tok := c.token
	c.tokMu.Unlock()
	c.mu.Lock()
	off := c.offer
	off.Transports = slices.Clone(off.Transports)
	c.mu.Unlock()
	tiers := c.order(off, prefer)
	if tok == "" || len(tiers) == 0 || (prefer != "" && tiers[0] != prefer) {
		return outcome{}, "", false, nil // nothing in hand, or a tier asked for that it does not offer
	}
	out, tier, err := c.cycle(ctx, tiers[:1], tok, off)
	if err != nil || out.connected || busy(out.end.err) {
		out.resumed = out.connected
		return out, tier, true, err
	}
	c.cfg.Logger.Debug("chat client resume failed; negotiating", "transport", tier, "err", out.end.err)
	return out, tier, false, nil
}

// maxResumes is how many links in a row may go live on the offer in hand
// before a cycle negotiates again: a restarted server may have changed
// what no control envelope carries (heartbeat_ms), or, without
// degradation, sends no control at all.
const maxResumes = 3

// tokenEnded reports whether a link ended on its credentials (4012, an
// unauthorized answer): the next cycle must ask Token again.
func tokenEnded(end ending) bool {
	return end.code == protocol.CloseTokenExpired || isUnauthorized(end.err)
}

// prepare calls Token and negotiates, starting a connect cycle.
func (c *Client) prepare(ctx context.Context) (string, offer, error) {
	tok, err := c.newToken(ctx)
	if err != nil {
		return "", offer{}, err
	}
	off, err := c.negotiate(ctx, tok)
	if err != nil {
		return "", offer{}, fmt.Errorf("negotiate: %w", err)
	}
	c.mu.Lock()
	c.offer = off
	c.mu.Unlock()
	return tok, off, nil
}

// cycle tries tiers in order until one connects, and returns how that
// link ended; or how the last one failed, if none connected. Its error is
// permanent: Run returns it.
func (c *Client) cycle(ctx context.Context, tiers []string, tok string, off offer) (outcome, string, error) {
	if len(tiers) == 0 {
		return outcome{end: ending{err: errors.New("client: the server offers none of the configured transports")}}, "", nil
	}
	var out outcome
	var tier string
	for i, t := range tiers {
		tier = t
		c.setState(func(s *State) { s.Transport, s.Connected, s.Reason = tier, false, "connecting" })
		out = c.runLink(ctx, tier, tok, off)
		if err := ctx.Err(); err != nil {
			return out, tier, err
		}
		var refused *RefusedError
		switch {
		case out.connected:
			return out, tier, nil
		case busy(out.end.err):
			// The server is down, restarting or at its connection cap: a
			// lower tier would meet the same. Back off and come back to the
			// best tier, so a restart does not strand clients on SSE.
			return out, tier, nil
		case errors.As(out.end.err, &refused):
			// Any other answer but 101 to an upgrade (a proxy that strips
			// it, the tier turned off): fall to the next tier at once.
		case isForbidden(out.end.err):
			return out, tier, fmt.Errorf("client: %s: %w", tier, out.end.err)
		case isUnauthorized(out.end.err):
			return out, tier, nil // a new token before anything else
		}
		if i+1 < len(tiers) {
			why := fmt.Sprintf("%s failed (%v); falling back to %s", tier, out.end.err, tiers[i+1])
			c.cfg.Logger.Debug("chat client fallback", "from", tier, "to", tiers[i+1], "err", out.end.err)
			c.setState(func(s *State) { s.Connected, s.Reason = false, why })
		}
	}
	return out, tier, nil
}

// order returns the tiers to try: the configured preference filtered by
// what the server offers, with prefer first if it is offered.
func (c *Client) order(off offer, prefer string) []string {
	var tiers []string
	for _, t := range c.cfg.Transports {
		if slices.Contains(off.Transports, t) {
			tiers = append(tiers, t)
		}
	}
	if i := slices.Index(tiers, prefer); i > 0 {
		tiers = slices.Insert(slices.Delete(tiers, i, i+1), 0, prefer)
	}
	if prefer != "" && !slices.Contains(tiers, prefer) && slices.Contains(off.Transports, prefer) {
		tiers = slices.Insert(tiers, 0, prefer) // asked for by name, though not configured
	}
	return tiers
}

// afterLink decides, from how a live link ended, which tier to try first
// next and how long to wait, and whether that wait is a backoff; the
// error is permanent. A backoff's step is brief, the backoffs in a row
// since a link last lived Config.StableAfter: a server that ends every
// link soon after it opens is retried at a growing interval. A move, a
// switch (4001) and the codes that reconnect at once neither wait a
// backoff nor count.
func (c *Client) afterLink(ctx context.Context, out outcome, brief int) (string, time.Duration, bool, error) {
	if out.next != "" {
		return out.next, 0, false, nil
	}
	end := out.end
	switch end.code {
	case protocol.CloseForbidden:
		return "", 0, false, &CloseError{Code: end.code, Reason: end.reason}
	case protocol.CloseNormal:
		if ctx.Err() != nil {
			return "", 0, false, ctx.Err()
		}
		return "", c.backoff(brief), true, nil
	case protocol.CloseGoingAway:
		if end.reconnect > 0 {
			return "", end.reconnect, false, nil
		}
		return "", c.backoff(brief), true, nil
	case protocol.CloseSwitchTransport:
		return c.controlTier(), 0, false, nil
	case protocol.CloseSlow, protocol.CloseHeartbeatTimeout, protocol.CloseTokenExpired, protocol.CloseTicketExpired:
		// At once; after 4012 the next cycle asks Token again
		// (tokenEnded).
		return "", 0, false, nil
	}
	if errors.Is(end.err, errDeadLink) || isUnauthorized(end.err) {
		return "", 0, false, nil
	}
	return "", c.backoff(brief), true, nil
}

// wait shows why the client is not connected and waits d before the next
// connect cycle.
func (c *Client) wait(ctx context.Context, d time.Duration, attempt int, tier string, why error) error {
	reason := "reconnecting"
	if why != nil {
		reason = why.Error()
	}
	if d > 0 {
		reason += fmt.Sprintf("; retrying in %v", d.Round(time.Millisecond))
	}
	c.setState(func(s *State) {
		if tier != "" {
			s.Transport = tier
		}
		s.Connected, s.Reason, s.Attempt = false, reason, attempt
	})
	c.cfg.Logger.Debug("chat client disconnected", "transport", tier, "reason", reason)
	return sleep(ctx, d)
}

// whyEnded describes how a live link ended.
func whyEnded(out outcome) error {
	switch {
	case out.next != "":
		return fmt.Errorf("moving to %s", out.next)
	case out.end.code != 0:
		return &CloseError{Code: out.end.code, Reason: out.end.reason, Reconnect: out.end.reconnect}
	case out.end.err != nil:
		return out.end.err
	}
	return errors.New("connection ended")
}

// dropIdle closes the idle connections of the client's own HTTP client;
// one given in Config is the caller's to manage.
func (c *Client) dropIdle() {
	if c.ownHTTP {
		c.http.CloseIdleConnections()
	}
}
