package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"time"
)

// StormResult says how the clients came back after the server died.
type StormResult struct {
	Killed    bool    `json:"killed"`      // the tool killed the server (--server-cmd); else it watched /readyz
	DownAtS   float64 `json:"down_at_s"`   // when it was killed or seen dead, seconds into the run
	ReadyAtS  float64 `json:"ready_at_s"`  // when /readyz answered 200 again, or the first client was back if sooner
	ReadyzAtS float64 `json:"readyz_at_s"` // when /readyz answered 200 again
	Clients   int     `json:"clients"`     // subscribed before the crash
	Back      int     `json:"back"`        // re-subscribed within the storm timeout
	FromReady Summary `json:"from_ready"`  // each client's re-subscription after the server was ready again
	FromDown  Summary `json:"from_down"`   // the same, counted from the crash
	// ServerCPUS is the CPU time, in seconds, the restarted server used
	// from its start until the last client was back (or the storm
	// timeout): the storm's cost, steadier than its times on a machine
	// whose speed varies. Only when the tool restarted the server, on
	// Linux; 0 otherwise.
	ServerCPUS float64 `json:"server_cpu_s,omitempty"`
	// GoneMS is how long after the kill the tool saw the killed server
	// exit: the kernel closes every socket it held first (about 150-240
	// ms for 10,000). Only when the tool restarted the server.
	GoneMS float64 `json:"gone_ms,omitempty"`
	// ToolCPUS is the CPU time, in seconds, the tool itself used from
	// the kill (or the server seen dead) until it saw the last client
	// back (it looks every 50 ms): its clients' half of the storm, and
	// its senders' traffic if there are any; on Linux, 0 otherwise.
	ToolCPUS float64 `json:"tool_cpu_s,omitempty"`
	Error    string  `json:"error,omitempty"`

	toolAtDown time.Duration // the tool's CPU time at the crash
	toolKnown  bool          // toolAtDown was read
}

// markDown records the tool's CPU time at the crash.
func (res *StormResult) markDown() {
	res.toolAtDown, res.toolKnown = procCPU(os.Getpid())
}

// storm holds the connected clients (with traffic if there are senders),
// then has the server die: killed with SIGKILL and restarted when the
// tool started it, otherwise awaited on /readyz while someone else kills
// it. It then measures, per client, the time until it is subscribed
// again: its first joined envelope after the crash.
func (r *run) storm(ctx, sendCtx context.Context, srv *serverProc, hc *http.Client) *StormResult {
	res := &StormResult{Killed: srv != nil}
	sctx, stopSends := context.WithCancel(ctx)
	defer func() {
		stopSends()
		r.stopSenders()
	}()
	r.startSenders(sctx, sendCtx)
	var before []*user
	for _, u := range r.users {
		if u.upAt.Load() != 0 && !u.ended.Load() {
			before = append(before, u)
		}
	}
	res.Clients = len(before)
	down, err := r.crash(ctx, srv, hc, res)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	res.DownAtS = down.Sub(r.start).Seconds()
	r.setPhase("down")
	up, err := waitReadiness(ctx, hc, r.cfg.URL, true, 50*time.Millisecond, r.cfg.StormTimeout)
	if err != nil {
		res.Error = fmt.Sprintf("the server was not ready again within %v", r.cfg.StormTimeout)
		return res
	}
	res.ReadyAtS = up.Sub(r.start).Seconds()
	r.prog.say("storm: server down at %.1fs, ready at %.1fs; waiting for %d clients", res.DownAtS, res.ReadyAtS, len(before))
	r.setPhase("resub")
	r.awaitResub(ctx, before, up)
	if after, ok := procCPU(os.Getpid()); ok && res.toolKnown {
		res.ToolCPUS = (after - res.toolAtDown).Seconds()
	}
	if srv != nil {
		if cpu, ok := srv.cpu(); ok {
			res.ServerCPUS = cpu.Seconds()
		}
	}
	res.ReadyzAtS = res.ReadyAtS
	resub := make([]time.Time, 0, len(before))
	for _, u := range before {
		if at := u.resubAt.Load(); at != 0 {
			resub = append(resub, time.Unix(0, at))
		}
	}
	ready, fromReady, fromDown := stormTimes(down, up, resub)
	res.ReadyAtS = ready.Sub(r.start).Seconds()
	res.Back = len(fromReady)
	res.FromReady, res.FromDown = exactSummary(fromReady), exactSummary(fromDown)
	return res
}

// crash has the server die and returns when it did.
func (r *run) crash(ctx context.Context, srv *serverProc, hc *http.Client, res *StormResult) (time.Time, error) {
	if srv == nil {
		r.setPhase("watch")
		r.prog.say("storm: %d clients connected; waiting up to %v for the server to die", r.cnt.subscribed.Load(), r.cfg.StormTimeout)
		down, err := waitReadiness(ctx, hc, r.cfg.URL, false, 50*time.Millisecond, r.cfg.StormTimeout)
		if err != nil {
			return time.Time{}, fmt.Errorf("the server did not die within %v", r.cfg.StormTimeout)
		}
		res.markDown()
		r.stormDown.Store(down.UnixNano())
		return down, nil
	}
	r.setPhase("hold")
	t := time.NewTimer(r.cfg.StormAfter)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return time.Time{}, ctx.Err()
	case <-t.C:
	}
	r.setPhase("kill")
	down := time.Now()
	r.stormDown.Store(down.UnixNano())
	res.markDown()
	srv.kill()
	res.GoneMS = msSince(down)
	if err := srv.restart(); err != nil {
		return time.Time{}, err
	}
	return down, nil
}

// awaitResub waits until every client in users has re-subscribed, or the
// storm timeout has passed since the server was ready.
func (r *run) awaitResub(ctx context.Context, users []*user, up time.Time) {
	ctx, cancel := context.WithDeadline(ctx, up.Add(r.cfg.StormTimeout))
	defer cancel()
	poll := time.NewTicker(50 * time.Millisecond)
	defer poll.Stop()
	for {
		back := 0
		for _, u := range users {
			if u.resubAt.Load() != 0 {
				back++
			}
		}
		if back == len(users) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-poll.C:
		}
	}
}

// stormTimes returns when the server counts as ready again and each
// re-subscription's time from then and from the crash. A server swamped
// by reconnecting clients answers the tool's /readyz late, so ready is
// when /readyz answered or when the first client was back, whichever came
// first: no client counts as back before the server was ready.
func stormTimes(down, readyz time.Time, resub []time.Time) (time.Time, []time.Duration, []time.Duration) {
	up := readyz
	for _, t := range resub {
		if t.Before(up) {
			up = t
		}
	}
	fromReady := make([]time.Duration, len(resub))
	fromDown := make([]time.Duration, len(resub))
	for i, t := range resub {
		fromReady[i], fromDown[i] = t.Sub(up), t.Sub(down)
	}
	return up, fromReady, fromDown
}

func msSince(t time.Time) float64 { return float64(time.Since(t)) / float64(time.Millisecond) }
