package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"time"
)

// result turns a finished run into its RunResult. It reads the users'
// ledgers, so it must run after stop.
func (r *run) result(m measures, storm *StormResult, timeline []Sample, missing []string) RunResult {
	cfg := r.cfg
	senders := cfg.senders(r.n)
	res := RunResult{
		Workload: cfg.Workload, Users: r.n, Rooms: len(r.rooms), RoomSize: cfg.roomSize(r.n), Tiers: map[string]int{},
		Senders: senders, Interval: cfg.interval(senders).Seconds(), MeasuredS: m.measured.Seconds(),
		Latency: r.lat.Summary(), LatencyIn: r.latIn.Summary(), LatencyOut: r.latOut.Summary(), Ack: r.ack.Summary(), Storm: storm, Timeline: timeline, Recovery: m.recovery,
		Failures: []string{}, Warnings: []string{},
	}
	var connects []time.Duration
	for _, u := range r.users {
		res.Tiers[u.tier]++
		if at := u.upAt.Load(); at != 0 {
			connects = append(connects, time.Unix(0, at).Sub(u.launched))
		}
	}
	res.Connect = ConnectResult{Summary: exactSummary(connects), AllMS: float64(m.connectAll) / float64(time.Millisecond),
		Parallel: cfg.ConnectParallel}
	res.Check = r.check(m.heads)
	res.Check.HeadsMissing, res.Check.HeadsSplit = len(missing), len(m.split)
	res.Check.DrainMS = float64(m.drain) / float64(time.Millisecond)
	res.Traffic = r.traffic(m, res.Check)
	if res.Traffic.Ops > 0 {
		res.ErrorRate = float64(res.Traffic.Failed) / float64(res.Traffic.Ops)
	}
	r.errMu.Lock()
	res.Errors = maps.Clone(r.errors)
	r.errMu.Unlock()
	res.Server, res.Loadgen = serverResult(m, timeline, r.n), loadgenResult(m, timeline, r.n)
	res.Levels = levelChanges(r, m.admin, timeline)
	r.judge(&res, missing, m.split)
	return res
}

// check runs the exactly-once check over every user's ledger.
func (r *run) check(heads map[string]uint64) Check {
	var k Check
	for _, u := range r.users {
		head, known := heads[u.room]
		switch {
		case !u.joined:
			k.NotSubscribed++
		case u.runErr != nil && !errors.Is(u.runErr, context.Canceled):
			k.Ended++
		case u.reset:
			k.BeyondHistory++
		case !known:
		default:
			k.Checked++
			if head > u.joinHead {
				k.Expected += head - u.joinHead
			}
			k.Received += u.received
			k.Lost += u.gapLost
			if head > u.last {
				k.Lost += head - u.last
				k.Behind += head - u.last
			}
			k.Duplicated += u.dupSeen
			k.ClientDuplicates += u.c.Stats().Duplicates
		}
	}
	return k
}

// traffic gathers the counters; connects count as operations, and
// clients that never subscribed or ended early as failed ones.
func (r *run) traffic(m measures, k Check) Traffic {
	c := &r.cnt
	t := Traffic{
		Sends: c.sends.Load(), SendErrors: c.sendErrors.Load(), SendsCancelled: c.sendCancelled.Load(),
		Backlog: c.backlog.Load(), Deliveries: c.deliveries.Load(), Reads: c.reads.Load(),
		ReadErrors: c.readErrors.Load(), Typing: c.typing.Load(), TypingErrors: c.typingErrors.Load(),
		Receipts: c.receipts.Load(), TypingEvents: c.typingEvents.Load(), Presence: c.presence.Load(),
		ErrorEvents: c.errorEvents.Load(), Refused: c.refused.Load(),
	}
	if secs := m.measured.Seconds(); secs > 0 {
		t.DeliveriesPerSec, t.SendsPerSec = float64(m.deliveries)/secs, float64(m.sends)/secs
	}
	t.ReceivedBytes, t.WSTakeovers, t.WSInflated = m.received, m.takeovers, m.inflated
	if m.deliveries > 0 {
		t.BytesPerDelivery = float64(m.received) / float64(m.deliveries)
	}
	t.Ops = uint64(r.n) + t.Sends + t.SendErrors + t.Reads + t.ReadErrors + t.Typing + t.TypingErrors
	t.Failed = uint64(k.NotSubscribed+k.Ended) + t.SendErrors + t.ReadErrors + t.TypingErrors
	return t
}

func serverResult(m measures, timeline []Sample, n int) ServerResult {
	s := ServerResult{Metrics: m.baseline.up || m.connected.up, RSSBaseline: m.baseline.rss, RSSConnected: m.connected.rss,
		RSSPeak: max(m.baseline.rss, m.connected.rss), HeapPeak: max(m.baseline.heap, m.connected.heap),
		GoroutinesPeak: max(m.baseline.goroutines, m.connected.goroutines), MaxLevel: max(m.baseline.level, m.connected.level)}
	for _, x := range timeline {
		s.Metrics = s.Metrics || x.ServerUp
		s.RSSPeak, s.HeapPeak = max(s.RSSPeak, x.ServerRSS), max(s.HeapPeak, x.ServerHeap)
		s.GoroutinesPeak, s.MaxLevel = max(s.GoroutinesPeak, x.ServerGoroutines), max(s.MaxLevel, x.Level)
		if x.ServerUp {
			s.SessionsAtEnd = x.Sessions
		}
	}
	if s.RSSConnected > s.RSSBaseline && s.RSSBaseline > 0 {
		s.RSSPerConn = float64(s.RSSConnected-s.RSSBaseline) / float64(n)
	}
	if m.held.up && m.connected.up {
		s.DeliveryP50MS = boundMS(bucketQuantile(m.connected.delivery, m.held.delivery, 0.5) * 1000)
		s.DeliveryP99MS = boundMS(bucketQuantile(m.connected.delivery, m.held.delivery, 0.99) * 1000)
	}
	if m.held.up {
		s.RSSEnd, s.GoroutinesEnd = m.held.rss, m.held.goroutines
		if s.RSSEnd > s.RSSBaseline && s.RSSBaseline > 0 {
			s.RSSPerConnEnd = float64(s.RSSEnd-s.RSSBaseline) / float64(n)
		}
	}
	if m.admin != nil {
		s.ConnectionsSeen = m.admin.Connections
	}
	_, s.CPUPeak = cpuStats(timeline, func(x Sample) float64 { return x.ServerCPU })
	s.CPUMean = serverCPUMean(timeline)
	return s
}

// serverCPUMean is the server's CPU over the measured phases, from the
// first and last scrapes of the same process: robust where one
// interval's figure is not.
func serverCPUMean(timeline []Sample) float64 {
	var first, last *Sample
	for i := range timeline {
		x := &timeline[i]
		if !measuredPhases[x.Phase] || !x.ServerUp {
			continue
		}
		if first == nil || x.ServerCPUTotal < first.ServerCPUTotal {
			first = x // the first, or the first after a restart
		}
		last = x
	}
	if first == nil || last.ServerAt <= first.ServerAt {
		return 0
	}
	return (last.ServerCPUTotal - first.ServerCPUTotal) / (last.ServerAt - first.ServerAt)
}

// measuredPhases are the phases whose samples count for CPU figures.
var measuredPhases = map[string]bool{"measure": true, "hold": true, "watch": true, "down": true, "resub": true}

// cpuStats returns the mean and peak of a CPU series over the measured
// phases.
func cpuStats(timeline []Sample, f func(Sample) float64) (mean, peak float64) {
	n := 0
	for _, x := range timeline {
		if measuredPhases[x.Phase] {
			v := f(x)
			mean += v
			peak = max(peak, v)
			n++
		}
	}
	if n > 0 {
		mean /= float64(n)
	}
	return mean, peak
}

func loadgenResult(m measures, timeline []Sample, n int) LoadgenResult {
	l := LoadgenResult{RSSBaseline: m.selfBaseline, RSSConnected: m.selfConnected, RSSPeak: m.selfConnected}
	for _, x := range timeline {
		l.RSSPeak, l.GoroutinesPeak = max(l.RSSPeak, x.LoadRSS), max(l.GoroutinesPeak, x.LoadGoroutines)
	}
	if l.RSSConnected > l.RSSBaseline {
		l.RSSPerClient = float64(l.RSSConnected-l.RSSBaseline) / float64(n)
	}
	l.CPUMean, l.CPUPeak = cpuStats(timeline, func(x Sample) float64 { return x.LoadCPU })
	return l
}

// judge adds the failure and warning lines.
func (r *run) judge(res *RunResult, missing, split []string) {
	k := res.Check
	fail := func(format string, args ...any) { res.Failures = append(res.Failures, fmt.Sprintf(format, args...)) }
	warn := func(format string, args ...any) { res.Warnings = append(res.Warnings, fmt.Sprintf(format, args...)) }
	if gaps := k.Lost - k.Behind; gaps > 0 {
		fail("%d messages lost (skipped over: owed to subscribed clients, never delivered, with later ones delivered)", gaps)
	}
	if k.Behind > 0 {
		fail("%d messages not delivered by the end of the drain (%s): clients still behind the head; a longer --drain tells late from lost",
			k.Behind, msText(k.DrainMS))
	}
	if k.Duplicated > 0 {
		fail("%d messages delivered twice or out of order", k.Duplicated)
	}
	if k.ClientDuplicates > 0 {
		fail("%d messages sent twice by the server (the client dropped them)", k.ClientDuplicates)
	}
	for _, s := range split {
		fail("nodes disagree on room %s", s)
	}
	if k.NotSubscribed > 0 {
		fail("%d clients never subscribed within %v", k.NotSubscribed, r.cfg.ConnectTimeout)
	}
	if k.Ended > 0 {
		fail("%d clients stopped with an error", k.Ended)
	}
	if st := res.Storm; st != nil {
		if st.Error != "" {
			fail("storm: %s", st.Error)
		} else if st.Back < st.Clients {
			fail("storm: %d of %d clients did not re-subscribe within %v", st.Clients-st.Back, st.Clients, r.cfg.StormTimeout)
		}
	}
	if res.Storm != nil && !r.signs() {
		warn("storm against a dev-mode server: the restarted server has a new dev secret, so every token is refused once " +
			"and fetched again; give the server and the tool --jwt-secret for a storm that users would see")
	}
	if k.BeyondHistory > 0 {
		warn("%d clients resumed beyond retained history (recovered:false) and were not checked", k.BeyondHistory)
	}
	for _, m := range missing {
		warn("no head for room %s; its clients were not checked", m)
	}
	if t := res.Traffic; t.SendErrors+t.ReadErrors+t.TypingErrors > 0 {
		warn("%d sends, %d reads and %d typing signals failed", t.SendErrors, t.ReadErrors, t.TypingErrors)
	}
	if t := res.Traffic; t.Backlog > 0 {
		warn("%d send ticks skipped: senders had %d sends awaiting their ack", t.Backlog, maxInFlight)
	}
	if procs := float64(runtime.GOMAXPROCS(0)); res.Loadgen.CPUPeak >= 0.9*procs {
		warn("the tool itself was busy (%.2f of its %.0f cores at peak, %.2f mean): latencies include its own queueing; "+
			"give it more cores or split the users over several processes", res.Loadgen.CPUPeak, procs, res.Loadgen.CPUMean)
	}
	if res.Interval > 0 && res.Interval < 0.1 {
		warn("%.1f sends/s per sender is over the server's default limit of 10/s per user; expect rate_limited", 1/res.Interval)
	}
}

// bucketQuantile returns the upper bound of the bucket that holds the q
// quantile of the observations a cumulative histogram gained from start
// to end (bound → cumulative count, +Inf included); 0 when it gained
// none.
func bucketQuantile(start, end map[float64]float64, q float64) float64 {
	bounds := make([]float64, 0, len(end))
	for le := range end {
		bounds = append(bounds, le)
	}
	slices.Sort(bounds)
	if len(bounds) == 0 {
		return 0
	}
	total := end[bounds[len(bounds)-1]] - start[bounds[len(bounds)-1]]
	if total <= 0 {
		return 0
	}
	for _, le := range bounds {
		if end[le]-start[le] >= q*total {
			return le
		}
	}
	return bounds[len(bounds)-1]
}
