package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Report is everything one invocation measured: one RunResult per user
// count. Failures lists every check that failed (lost or duplicated
// messages, clients that never connected, a storm that did not recover);
// the report is written whatever they say.
type Report struct {
	Started  time.Time   `json:"started"`
	Target   string      `json:"target"`
	Command  string      `json:"command,omitempty"`
	Machine  Machine     `json:"machine"`
	Settings Settings    `json:"settings"`
	Runs     []RunResult `json:"runs"`
	Failures []string    `json:"failures"`
	Warnings []string    `json:"warnings"`
}

// Settings are the workload's parameters after defaults.
type Settings struct {
	Workload    string         `json:"workload"`
	RoomSize    int            `json:"room_size"`
	Tiers       map[string]int `json:"tiers"` // shares
	Pinned      bool           `json:"pinned"`
	Compress    bool           `json:"compress"` // the clients offered compression (--compress)
	Senders     int            `json:"senders"`  // in the largest run
	Rate        float64        `json:"rate_per_sender"`
	TotalRate   float64        `json:"total_rate,omitempty"`
	MsgSize     int            `json:"msg_size"`
	ReadEveryMS int64          `json:"read_every_ms"`
	TypingShare float64        `json:"typing_share"`
	DurationS   float64        `json:"duration_s"`
	Auth        string         `json:"auth"`  // "dev login" or "HS256"
	Nodes       int            `json:"nodes"` // servers the users were dealt over, in turn
	SourceIPs   int            `json:"source_ips"`
}

// RunResult is one run: n users for the workload.
type RunResult struct {
	Workload  string         `json:"workload"`
	Users     int            `json:"users"`
	Rooms     int            `json:"rooms"`
	RoomSize  int            `json:"room_size"`
	Tiers     map[string]int `json:"tiers"` // users per starting tier
	Senders   int            `json:"senders"`
	Interval  float64        `json:"send_interval_s"` // per sender
	MeasuredS float64        `json:"measured_s"`      // the measured phase

	Connect ConnectResult `json:"connect"`
	Latency Summary       `json:"latency"` // send to delivery, every delivery
	// Latency split at the message's stored time (its ts, to the
	// millisecond; meaningful where the tool and the server read one
	// clock, as on one machine): the send's way in, and the rest.
	LatencyIn  Summary           `json:"latency_in"`  // send to stored
	LatencyOut Summary           `json:"latency_out"` // stored to delivery
	Ack        Summary           `json:"ack"`         // send to ack
	Traffic    Traffic           `json:"traffic"`
	ErrorRate  float64           `json:"error_rate"` // failed operations / operations
	Errors     map[string]uint64 `json:"errors"`     // failures by kind
	Check      Check             `json:"check"`
	Server     ServerResult      `json:"server"`
	Loadgen    LoadgenResult     `json:"loadgen"`
	Storm      *StormResult      `json:"storm,omitempty"`
	Levels     []LevelChange     `json:"levels"`
	Recovery   *Recovery         `json:"recovery,omitempty"` // with --recover
	Timeline   []Sample          `json:"timeline"`
	Plots      []string          `json:"plots,omitempty"`
	Failures   []string          `json:"failures"`
	Warnings   []string          `json:"warnings"`
}

// ConnectResult is the connect phase: per client, from Run's start to
// its first joined envelope (exact order statistics), and for everyone.
type ConnectResult struct {
	Summary
	AllMS    float64 `json:"all_ms"`   // from the first client's start to the last subscription
	Parallel int     `json:"parallel"` // clients connecting at once, at most
}

// Traffic counts what went through.
type Traffic struct {
	Sends            uint64  `json:"sends"` // acked
	SendErrors       uint64  `json:"send_errors"`
	SendsCancelled   uint64  `json:"sends_cancelled"` // cut off by the end of the run
	Backlog          uint64  `json:"backlog"`         // send ticks skipped: maxInFlight sends awaited their ack
	Deliveries       uint64  `json:"deliveries"`
	DeliveriesPerSec float64 `json:"deliveries_per_sec"` // over the measured phase
	SendsPerSec      float64 `json:"sends_per_sec"`
	Reads            uint64  `json:"reads"`
	ReadErrors       uint64  `json:"read_errors"`
	Typing           uint64  `json:"typing"`
	TypingErrors     uint64  `json:"typing_errors"`
	Receipts         uint64  `json:"receipts"` // read positions received in receipts
	TypingEvents     uint64  `json:"typing_events"`
	Presence         uint64  `json:"presence"` // presence changes received (a count counts as one)
	ErrorEvents      uint64  `json:"error_events"`
	Refused          uint64  `json:"refused"` // reads and typing refused as feature_disabled (a level); not errors
	// ReceivedBytes is what the clients read from the server over the
	// measured phase, on the wire (HTTP and WebSocket framing included,
	// TCP and IP not), and BytesPerDelivery that over its deliveries:
	// the figure compression moves.
	ReceivedBytes    uint64  `json:"received_bytes"`
	BytesPerDelivery float64 `json:"bytes_per_delivery"`
	// WSTakeovers is how many WebSocket connections the server granted
	// permessage-deflate with context takeover (--compress), and
	// WSInflated how many messages came deflated that way, over the run.
	WSTakeovers int64  `json:"ws_takeovers,omitempty"`
	WSInflated  int64  `json:"ws_inflated,omitempty"`
	Ops         uint64 `json:"ops"`    // connects, sends, reads and typing attempted
	Failed      uint64 `json:"failed"` // those that failed
}

// Check is the exactly-once delivery check: every client that stayed
// subscribed must have received each seq of its room after its join
// point, up to the room's head at the end, once and in order.
type Check struct {
	Checked          int     `json:"checked"`           // clients checked
	Expected         uint64  `json:"expected"`          // deliveries they were owed
	Received         uint64  `json:"received"`          //
	Lost             uint64  `json:"lost"`              // owed and never delivered: skipped over, plus Behind
	Behind           uint64  `json:"behind"`            // of Lost, the tail: after the client's last seq, not there when the drain ended
	Duplicated       uint64  `json:"duplicated"`        // delivered twice, or out of order (the client should prevent both)
	ClientDuplicates uint64  `json:"client_duplicates"` // sent twice by the server, dropped by the client
	NotSubscribed    int     `json:"not_subscribed"`    // never joined: connect failures
	Ended            int     `json:"ended"`             // Run ended early with an error
	BeyondHistory    int     `json:"beyond_history"`    // resumed past retained history (recovered:false); not checked
	HeadsMissing     int     `json:"heads_missing"`     // rooms whose head could not be read; not checked
	HeadsSplit       int     `json:"heads_split"`       // rooms whose nodes read different heads (a failure); checked against the highest
	DrainMS          float64 `json:"drain_ms"`          // from the end of sends to the last delivery owed
}

// ServerResult is the server's memory, from its /metrics.
type ServerResult struct {
	Metrics        bool    `json:"metrics"` // /metrics answered
	RSSBaseline    uint64  `json:"rss_baseline"`
	RSSConnected   uint64  `json:"rss_connected"` // right after the connect phase
	RSSPeak        uint64  `json:"rss_peak"`
	HeapPeak       uint64  `json:"heap_peak"`
	RSSPerConn     float64 `json:"rss_per_conn"`     // (connected - baseline) / users
	RSSEnd         uint64  `json:"rss_end"`          // at the end of the measured phase, before the drain
	RSSPerConnEnd  float64 `json:"rss_per_conn_end"` // (end - baseline) / users
	GoroutinesEnd  int     `json:"goroutines_end"`
	GoroutinesPeak int     `json:"goroutines_peak"`
	MaxLevel       int     `json:"max_level"` // -1 unknown
	CPUMean        float64 `json:"cpu_mean"`  // cores busy, mean over the measured phase
	CPUPeak        float64 `json:"cpu_peak"`  // the busiest sample interval
	// DeliveryP50MS and DeliveryP99MS are the server's own view of the
	// measured phase: chat_delivery_seconds (fan-out to transport write),
	// as the upper bound of the bucket the quantile falls in; +Inf past
	// the last bound (the string "+Inf" in JSON), 0 unknown. Against the
	// tool's latency they tell the server's queueing from the tool's own.
	DeliveryP50MS   boundMS        `json:"delivery_p50_ms,omitempty"`
	DeliveryP99MS   boundMS        `json:"delivery_p99_ms,omitempty"`
	SessionsAtEnd   map[string]int `json:"sessions_at_end,omitempty"`
	ConnectionsSeen map[string]int `json:"connections,omitempty"` // the admin status's count, poll included
}

// LoadgenResult is this tool's own footprint.
type LoadgenResult struct {
	RSSBaseline    uint64  `json:"rss_baseline"`
	RSSConnected   uint64  `json:"rss_connected"`
	RSSPeak        uint64  `json:"rss_peak"`
	RSSPerClient   float64 `json:"rss_per_client"`
	GoroutinesPeak int     `json:"goroutines_peak"`
	CPUMean        float64 `json:"cpu_mean"` // cores busy, mean over the measured phase
	CPUPeak        float64 `json:"cpu_peak"`
}

// write puts report.json, report.md and the plots in dir.
func (rep *Report) write(dir string) error {
	if dir == "" {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for i := range rep.Runs {
		plots, err := writePlots(dir, &rep.Runs[i])
		if err != nil {
			rep.Warnings = appendOnce(rep.Warnings, "plots: "+err.Error())
		}
		rep.Runs[i].Plots = plots
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "report.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "report.md"), []byte(rep.Markdown()), 0o644)
}

func appendOnce(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}

// Markdown renders the report: the seed's table, then each run's detail.
func (rep *Report) Markdown() string {
	var b strings.Builder
	m := rep.Machine
	fmt.Fprintf(&b, "# chatload: %s against %s\n\n", rep.Settings.Workload, rep.Target)
	fmt.Fprintf(&b, "%s. Machine: %d CPUs for the tool (GOMAXPROCS %d), %s memory, %s, Linux %s; RLIMIT_NOFILE %d.\n\n",
		rep.Started.Format(time.RFC3339), m.CPUs, m.GOMAXPROCS, bytesIEC(m.MemBytes), m.Go, m.Kernel, m.NoFileSoft)
	s := rep.Settings
	fmt.Fprintf(&b, "Workload: %s; rooms of %d; tier shares %s%s; %s",
		s.Workload, s.RoomSize, tierList(s.Tiers), map[bool]string{true: " (pinned)"}[s.Pinned], rateText(s))
	fmt.Fprintf(&b, "; %d-byte messages; reads %s; typing before %.0f%% of sends; %gs measured; auth %s; %d source addresses",
		s.MsgSize, readText(s.ReadEveryMS), s.TypingShare*100, s.DurationS, s.Auth, s.SourceIPs)
	if s.Nodes > 1 {
		fmt.Fprintf(&b, "; users dealt over %d nodes in turn (server figures are their sums)", s.Nodes)
	}
	if s.Compress {
		b.WriteString("; clients offer compression")
	}
	b.WriteString(".\n\n")
	b.WriteString("| users | avg latency | p95 | p99 | error rate | server memory (RSS peak) | deliveries/s | lost | duplicated |\n")
	b.WriteString("|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range rep.Runs {
		l := r.Latency
		if l.Count == 0 {
			l = Summary{AvgMS: math.NaN(), P95MS: math.NaN(), P99MS: math.NaN()}
		}
		fmt.Fprintf(&b, "| %d | %s | %s | %s | %.2f %% | %s | %s | %d | %d |\n", r.Users, msText(l.AvgMS),
			msText(l.P95MS), msText(l.P99MS), r.ErrorRate*100, memText(r.Server.RSSPeak),
			si(r.Traffic.DeliveriesPerSec), r.Check.Lost, r.Check.Duplicated+r.Check.ClientDuplicates)
	}
	b.WriteString("\nLatency is from the sender's send call to each receiver's delivery (same clock), over every delivery. " +
		"Error rate is failed operations (connects, sends not acked within the send timeout, reads, typing) over all operations.\n")
	if len(rep.Failures) > 0 {
		b.WriteString("\n## Failures\n\n")
		for _, f := range rep.Failures {
			fmt.Fprintf(&b, "- **FAIL** %s\n", f)
		}
	}
	if len(rep.Warnings) > 0 {
		b.WriteString("\n## Warnings\n\n")
		for _, w := range rep.Warnings {
			fmt.Fprintf(&b, "- %s\n", w)
		}
	}
	for _, r := range rep.Runs {
		r.markdown(&b)
	}
	return b.String()
}

func (r RunResult) markdown(b *strings.Builder) {
	fmt.Fprintf(b, "\n## %s, %d users\n\n", r.Workload, r.Users)
	sends := "no senders"
	if r.Senders > 0 {
		sends = fmt.Sprintf("%d senders, one message every %.2fs each", r.Senders, r.Interval)
	}
	fmt.Fprintf(b, "- %d rooms of up to %d; starting tiers %s; %s; measured %.1fs.\n",
		r.Rooms, r.RoomSize, tierList(r.Tiers), sends, r.MeasuredS)
	c := r.Connect
	fmt.Fprintf(b, "- Connect (Run to first joined, %d at a time): all in %s; each t50 %s, t95 %s, t99 %s, max %s; %d never subscribed.\n",
		c.Parallel, msText(c.AllMS), msText(c.P50MS), msText(c.P95MS), msText(c.P99MS), msText(c.MaxMS), r.Check.NotSubscribed)
	for _, d := range []struct {
		what string
		s    Summary
	}{{"Delivery latency", r.Latency}, {"Send to stored (ts)", r.LatencyIn}, {"Stored (ts) to delivery", r.LatencyOut}, {"Ack latency", r.Ack}} {
		if d.s.Count > 0 {
			fmt.Fprintf(b, "- %s: avg %s, p50 %s, p95 %s, p99 %s, max %s over %d.\n", d.what,
				msText(d.s.AvgMS), msText(d.s.P50MS), msText(d.s.P95MS), msText(d.s.P99MS), msText(d.s.MaxMS), d.s.Count)
		}
	}
	t := r.Traffic
	fmt.Fprintf(b, "- Traffic: %d sends acked (%.1f/s), %d failed, %d cut off at the end, %d skipped as backlog; "+
		"%d deliveries (%s/s); %d reads (%d failed), %d typing (%d failed); received %d receipts, %d typing, %d presence, %d errors.\n",
		t.Sends, t.SendsPerSec, t.SendErrors, t.SendsCancelled, t.Backlog, t.Deliveries, si(t.DeliveriesPerSec),
		t.Reads, t.ReadErrors, t.Typing, t.TypingErrors, t.Receipts, t.TypingEvents, t.Presence, t.ErrorEvents)
	if t.ReceivedBytes > 0 {
		fmt.Fprintf(b, "- Received over the measured phase: %s on the wire, %.0f bytes a delivery.\n",
			bytesIEC(t.ReceivedBytes), t.BytesPerDelivery)
	}
	if t.WSTakeovers > 0 {
		fmt.Fprintf(b, "- WebSocket compression: context takeover on %d connections, %d messages deflated with it.\n",
			t.WSTakeovers, t.WSInflated)
	}
	fmt.Fprintf(b, "- Errors: %.3f %% (%d of %d operations; %d refused by a level, not counted)%s.\n",
		r.ErrorRate*100, t.Failed, t.Ops, t.Refused, errorList(r.Errors))
	k := r.Check
	fmt.Fprintf(b, "- Exactly-once: %d clients checked, %d deliveries owed, %d lost (%d of them a tail not delivered by the drain's end), "+
		"%d duplicated, %d duplicates dropped by the client; "+
		"%d ended early, %d resumed beyond history, %d rooms without a head, %d rooms whose nodes disagreed on the head; drain %s.\n",
		k.Checked, k.Expected, k.Lost, k.Behind, k.Duplicated, k.ClientDuplicates, k.Ended, k.BeyondHistory, k.HeadsMissing, k.HeadsSplit,
		msText(k.DrainMS))
	sv, lg := r.Server, r.Loadgen
	if sv.Metrics {
		fmt.Fprintf(b, "- Server: RSS %s before, %s connected, %s peak (%s per connection); heap peak %s; %d goroutines peak; "+
			"CPU %.2f cores mean, %.2f peak; highest level %d.\n",
			memText(sv.RSSBaseline), memText(sv.RSSConnected), memText(sv.RSSPeak), kibText(sv.RSSPerConn),
			memText(sv.HeapPeak), sv.GoroutinesPeak, sv.CPUMean, sv.CPUPeak, sv.MaxLevel)
		if sv.RSSEnd > 0 {
			fmt.Fprintf(b, "- Server at the end of the measured phase: RSS %s (%s per connection), %d goroutines.\n",
				memText(sv.RSSEnd), kibText(sv.RSSPerConnEnd), sv.GoroutinesEnd)
		}
		if sv.DeliveryP99MS > 0 {
			fmt.Fprintf(b, "- Server's own delivery latency over the measured phase (fan-out to transport write, for poll to its answer, "+
				"`chat_delivery_seconds`, bucket bounds): p50 ≤ %s, p99 ≤ %s; the latency above adds the network and the tool's own queueing.\n",
				boundText(float64(sv.DeliveryP50MS)), boundText(float64(sv.DeliveryP99MS)))
		}
	} else {
		b.WriteString("- Server: no /metrics.\n")
	}
	fmt.Fprintf(b, "- Load tool: RSS %s before, %s connected, %s peak (%s per client); %d goroutines peak; CPU %.2f cores mean, %.2f peak.\n",
		memText(lg.RSSBaseline), memText(lg.RSSConnected), memText(lg.RSSPeak), kibText(lg.RSSPerClient), lg.GoroutinesPeak,
		lg.CPUMean, lg.CPUPeak)
	if st := r.Storm; st != nil {
		how := "seen dead on /readyz"
		if st.Killed {
			how = "killed with SIGKILL and restarted"
		}
		fmt.Fprintf(b, "- Storm: server %s at %.1fs, ready at %.1fs (/readyz at %.1fs); %d of %d clients re-subscribed; after ready: t50 %s, t95 %s, t99 %s, max %s; after the crash: t95 %s, t99 %s.",
			how, st.DownAtS, st.ReadyAtS, st.ReadyzAtS, st.Back, st.Clients, msText(st.FromReady.P50MS), msText(st.FromReady.P95MS),
			msText(st.FromReady.P99MS), msText(st.FromReady.MaxMS), msText(st.FromDown.P95MS), msText(st.FromDown.P99MS))
		if st.GoneMS > 0 {
			fmt.Fprintf(b, " The killed server was gone %.0f ms after the kill.", st.GoneMS)
		}
		until := "the last client was back"
		if st.Back < st.Clients {
			until = "the storm timeout"
		}
		if st.ServerCPUS > 0 && st.Back > 0 {
			fmt.Fprintf(b, " The restarted server used %.2f s of CPU from its start until %s, %.0f µs a client back.",
				st.ServerCPUS, until, st.ServerCPUS*1e6/float64(st.Back))
		}
		if st.ToolCPUS > 0 && st.Back > 0 {
			fmt.Fprintf(b, " The tool used %.2f s of CPU from the crash until %s, %.0f µs a client back.",
				st.ToolCPUS, until, st.ToolCPUS*1e6/float64(st.Back))
		}
		if st.Error != "" {
			fmt.Fprintf(b, " %s.", st.Error)
		}
		b.WriteString("\n")
	}
	for _, lc := range r.Levels {
		fmt.Fprintf(b, "- Level %d → %d at %.1fs%s.\n", lc.From, lc.To, lc.T, map[bool]string{true: " by " + lc.By}[lc.By != ""])
	}
	if rc := r.Recovery; rc != nil {
		if rc.BackAtS >= 0 {
			fmt.Fprintf(b, "- Recovery: the load ended at %.1fs; the level was 0 again at %.1fs (%.1fs later).\n",
				rc.LoadEndS, rc.BackAtS, rc.BackAtS-rc.LoadEndS)
		} else {
			fmt.Fprintf(b, "- Recovery: the load ended at %.1fs; the level was still %d %.0fs later.\n",
				rc.LoadEndS, rc.Level, rc.WaitedS)
		}
	}
	for _, p := range r.Plots {
		fmt.Fprintf(b, "\n![%s](%s)\n", strings.TrimSuffix(p, ".png"), p)
	}
}

func msText(ms float64) string {
	if math.IsNaN(ms) {
		return "n/a"
	}
	if ms >= 10000 {
		return fmt.Sprintf("%.1f s", ms/1000)
	}
	if ms >= 10 {
		return fmt.Sprintf("%.0f ms", ms)
	}
	return fmt.Sprintf("%.1f ms", ms)
}

func memText(b uint64) string {
	if b == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.0f MB", float64(b)/1e6)
}

func kibText(b float64) string {
	if b <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f KiB", b/1024)
}

func tierList(t map[string]int) string {
	var parts []string
	for _, n := range tierNames {
		if t[n] > 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", n, t[n]))
		}
	}
	return strings.Join(parts, ",")
}

func rateText(s Settings) string {
	if s.Senders == 0 {
		return "no sends"
	}
	if s.TotalRate > 0 {
		return fmt.Sprintf("%g msg/s in total", s.TotalRate)
	}
	return fmt.Sprintf("%g msg/s per sender", s.Rate)
}

func readText(ms int64) string {
	if ms <= 0 {
		return "off"
	}
	return fmt.Sprintf("at most every %dms per room", ms)
}

func errorList(m map[string]uint64) string {
	if len(m) == 0 {
		return ""
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s: %d", k, m[k])
	}
	return "; " + strings.Join(parts, ", ")
}

// boundMS is a histogram bound in milliseconds, +Inf included, which
// JSON cannot carry as a number: it goes as the string "+Inf". Without
// it a run whose server fell past the last bucket wrote no report.
type boundMS float64

// MarshalJSON implements json.Marshaler.
func (b boundMS) MarshalJSON() ([]byte, error) {
	if math.IsInf(float64(b), 1) {
		return []byte(`"+Inf"`), nil
	}
	return json.Marshal(float64(b))
}

// boundText prints a histogram bound in milliseconds; +Inf as past the
// last bound.
func boundText(ms float64) string {
	if math.IsInf(ms, 1) {
		return "∞ (past the last bucket)"
	}
	return msText(ms)
}
