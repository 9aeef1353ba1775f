package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/chatd/chatd/featureflags"
)

func samplePlan(t *testing.T) Plan {
	t.Helper()
	p, err := rr(10, 50, 100).plan(t0, "admin:ops")
	if err != nil {
		t.Fatal(err)
	}
	p.record(Event{At: t0, Kind: "start", Percent: 10, Actor: "admin:ops"})
	p.Checks = []Check{{Guard: GuardErrors, Inside: 0.1, Outside: 0.01, InsideSamples: 60, OutsideSamples: 600, Verdict: VerdictTripped}}
	return p
}

func TestFileStoreRoundTrip(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := NewFileStore(dir)
	if plans, err := s.Load(ctx); err != nil || plans != nil {
		t.Fatalf("no file: %v %v", plans, err)
	}
	p := samplePlan(t)
	q := p.clone()
	q.Flag, q.State, q.PausedAt = featureflags.Typing, Paused, t0.Add(time.Minute)
	if err := s.Save(ctx, []Plan{p, q}); err != nil {
		t.Fatal(err)
	}
	got, err := NewFileStore(dir).Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, []Plan{p, q}) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, []Plan{p, q})
	}
	if err := s.Save(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Load(ctx); err != nil || len(got) != 0 {
		t.Fatalf("after saving none: %v %v", got, err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != FileName {
		t.Fatalf("directory holds %v, want only %s", entries, FileName)
	}
}

func TestFileStoreRefusesBadFiles(t *testing.T) {
	ctx := context.Background()
	good, err := EncodePlans([]Plan{samplePlan(t)})
	if err != nil {
		t.Fatal(err)
	}
	bad := map[string]string{
		"not json":      "{",
		"trailing data": string(good) + "{}",
		"version":       strings.Replace(string(good), `"version": 1`, `"version": 2`, 1),
		"steps":         strings.Replace(string(good), `"steps": [`, `"steps": [60,`, 1),
		"state":         strings.Replace(string(good), `"state": "running"`, `"state": "sleeping"`, 1),
		"percent":       strings.Replace(string(good), `"percent": 10`, `"percent": 11`, 1),
		"paused when":   strings.Replace(string(good), `"state": "running"`, `"state": "paused"`, 1),
		"halted at top": strings.NewReplacer(`"state": "running"`, `"state": "halted"`, `"step": 0`, `"step": 2`,
			`"percent": 10`, `"percent": 100`).Replace(string(good)),
		"hold":      strings.Replace(string(good), `"hold": "1h0m0s"`, `"hold": 3600`, 1),
		"twice":     `{"version":1,"plans":[` + planJSON(t) + `,` + planJSON(t) + `]}`,
		"too large": `{"version":1,"plans":[],"pad":"` + strings.Repeat("x", maxFileSize) + `"}`,
	}
	for name, data := range bad {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, FileName), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		if plans, err := NewFileStore(dir).Load(ctx); err == nil {
			t.Errorf("%s: loaded %d plans, want an error", name, len(plans))
		}
	}
}

func planJSON(t *testing.T) string {
	b, err := json.Marshal(samplePlan(t))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// flakyStore is the real file store with saves that fail on demand, as a
// full disk or a Redis outage makes them.
type flakyStore struct {
	*FileStore
	failSave bool
}

func (s *flakyStore) Save(ctx context.Context, plans []Plan) error {
	if s.failSave {
		return errors.New("disk full")
	}
	return s.FileStore.Save(ctx, plans)
}

func TestSaveFailureIsRetried(t *testing.T) {
	e := newEnv(t)
	fs := &flakyStore{FileStore: e.store}
	e.m = NewManager(Config{Flags: e.flags, Store: fs, Meter: e.meter, Logger: quiet(), Clock: e})
	e.start(rr(10, 50, 100))
	fs.failSave = true
	e.run(61, rrFlag, fault{}, nil)
	if p := e.plan(rrFlag); p.Percent != 50 || e.rollout(rrFlag) != 50 {
		t.Fatalf("while saves fail: plan at %d, flag at %d, want 50", p.Percent, e.rollout(rrFlag))
	}
	if plans, _ := e.store.Load(context.Background()); plans[0].Percent != 10 {
		t.Fatalf("the file moved on without a save: %d", plans[0].Percent)
	}
	fs.failSave = false
	e.run(1, rrFlag, fault{}, nil)
	plans, err := e.store.Load(context.Background())
	if err != nil || len(plans) != 1 || plans[0].Percent != 50 {
		t.Fatalf("once saves work: %v %+v", err, plans)
	}
	// A store that cannot be read refuses operations instead of guessing.
	if err := os.WriteFile(e.store.Path(), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.Pause(context.Background(), rrFlag, "admin:ops"); err == nil || errors.Is(err, ErrNotFound) {
		t.Fatalf("pause on an unreadable store: %v", err)
	}
}

func FuzzDecodePlans(f *testing.F) {
	good, _ := EncodePlans([]Plan{samplePlan(&testing.T{})})
	f.Add(good)
	f.Add([]byte(`{"version":1,"plans":[]}`))
	f.Add([]byte(`{"version":1,"plans":[{"flag":"typing","steps":[1,100],"hold":"1s","window":"1s","state":"halted","step":-1}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		plans, err := DecodePlans(data)
		if err != nil {
			return
		}
		// What decodes is valid, and survives a round trip unchanged.
		for _, p := range plans {
			if err := p.validate(); err != nil {
				t.Fatalf("decoded an invalid plan: %v", err)
			}
		}
		again, err := EncodePlans(plans)
		if err != nil {
			t.Fatal(err)
		}
		back, err := DecodePlans(again)
		if err != nil || len(back) != len(plans) {
			t.Fatalf("re-decode: %v (%d plans, want %d)", err, len(back), len(plans))
		}
	})
}

func FuzzStartRequest(f *testing.F) {
	f.Add([]byte(`{"flag":"read_receipts","steps":[10,50,100],"hold":"24h","window":"10m"}`))
	f.Add([]byte(`{"flag":"typing","steps":[5],"hold":"1m","guards":{"errors":{"ratio":3,"floor":0.1,"min_samples":10},"delivery":{"off":true}}}`))
	f.Add([]byte(`{"flag":"typing","steps":[100,5],"hold":"-1h"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var req StartRequest
		if json.Unmarshal(data, &req) != nil {
			return
		}
		p, err := req.plan(t0, "admin:fuzz")
		if err != nil {
			var verr *ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("error of an unexpected kind: %v", err)
			}
			return
		}
		if err := p.validate(); err != nil {
			t.Fatalf("accepted a request that makes an invalid plan: %v", err)
		}
		if p.Percent != p.Steps[0] || time.Duration(p.Window) > time.Duration(p.Hold) {
			t.Fatalf("plan %+v", p)
		}
	})
}
