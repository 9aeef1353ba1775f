package client

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatd/chatd/core/protocol"
	"github.com/chatd/chatd/degrade"
)

// pollTap is a RoundTripper that hands each 200 poll answer's body, as
// it came from the server, to see (under one lock), which may change it
// in place before the client reads it.
type pollTap struct {
	next http.RoundTripper
	mu   sync.Mutex
	see  func(req *http.Request, body []byte)
}

func (p *pollTap) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := p.next.RoundTrip(req)
	if err != nil || !strings.HasSuffix(req.URL.Path, "/v1/poll") || resp.StatusCode != http.StatusOK {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	p.see(req, body)
	p.mu.Unlock()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, nil
}

// pollRecorder records each poll's query and whether its answer carried
// a control, and passes everything through.
type pollRecorder struct {
	pollTap
	log []pollSeen
}

type pollSeen struct {
	tag     string // the poll's control_tag=
	control bool   // its answer carried "control"
}

func newPollRecorder(next http.RoundTripper) *pollRecorder {
	r := &pollRecorder{}
	r.next = next
	r.see = func(req *http.Request, body []byte) {
		r.log = append(r.log, pollSeen{tag: req.URL.Query().Get("control_tag"), control: bytes.Contains(body, []byte(`"control":{`))})
	}
	return r
}

func (r *pollRecorder) seen() []pollSeen {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]pollSeen(nil), r.log...)
}

// A poll client passes back the tag of the control it has, so that the
// server leaves the control out of its answers, and still follows a level
// change: its answer carries the new control, and the client polls on at
// once after that quick answer (it used to wait poll_interval_ms). Poll
// only: the other tiers get control envelopes as frames.
func TestPollControlTag(t *testing.T) {
	t.Parallel()
	const room = "ctl-tag"
	// A poll interval no step outlasts: a client that waited it after the
	// level change's quick answer would never get the last message.
	srv := newServer(t, serverOptions{degrade: true, pollInterval: time.Hour})
	rec := newPollRecorder(http.DefaultTransport.(*http.Transport).Clone())
	cfg := testConfig(t, srv.URL, "tara", []string{Poll}, room)
	cfg.HTTPClient = &http.Client{Transport: rec}
	c := start(t, cfg)
	waitState(t, c, "connected on poll", connectedOn(Poll))
	ctx := stepCtx(t)
	want := 1
	next := func() {
		t.Helper()
		srv.post(t, "bob", room, fmt.Sprint("k-", want), text(uint64(want)))
		for {
			select {
			case e := <-c.Events():
				if e.Type != protocol.TypeMessage {
					continue
				}
				if e.Seq != uint64(want) {
					t.Fatalf("got seq %d, want %d", e.Seq, want)
				}
				want++
				return
			case <-ctx.Done():
				t.Fatalf("message %d did not come", want)
			}
		}
	}
	for range 3 {
		next()
	}
	log := rec.seen()
	if len(log) < 3 || log[0].tag != "" || !log[0].control {
		t.Fatalf("polls %+v: want a first poll with no tag answered with the control", log)
	}
	var tagged, bare int
	for _, p := range log[1:] {
		if p.tag != "" {
			tagged++
			if !p.control {
				bare++
			}
		}
	}
	if tagged == 0 || bare == 0 {
		t.Fatalf("polls %+v: want later polls to name a tag and get answers without the control", log)
	}
	srv.setLevel(t, degrade.LevelNoReceipts)
	waitState(t, c, "at level 1 on poll", func(s State) bool { return connectedOn(Poll)(s) && s.Level == 1 })
	next()
}

// After fast empty answers in a row, the client waits nothing after the
// first, then 250 ms doubling up to the interval.
func TestFastPause(t *testing.T) {
	interval := 5 * time.Second
	for fast, want := range []time.Duration{0, 0, 250 * time.Millisecond, 500 * time.Millisecond, time.Second,
		2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second} {
		if got := fastPause(fast, interval); got != want {
			t.Errorf("fastPause(%d) = %v, want %v", fast, got, want)
		}
	}
	if got := fastPause(1000, interval); got != interval {
		t.Errorf("fastPause(1000) = %v, want the interval", got)
	}
}
