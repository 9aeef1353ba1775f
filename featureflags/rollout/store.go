package rollout

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
)

// PlanStore keeps the plans, so that they survive a restart. Load returns
// what the last Save stored (nothing before the first). Save replaces the
// whole set. Both may fail; the Manager then retries at its next tick.
//
// On a cluster, every node shares one PlanStore (the Redis engine's KV
// backs it). Every Manager operation loads, changes and saves, so that an
// admin request served by any node acts on the latest plans; concurrent
// writers are last-writer-wins, as the flags are. Only the node holding
// the lease steps and halts plans (Config.Leader).
type PlanStore interface {
	Load(ctx context.Context) ([]Plan, error)
	Save(ctx context.Context, plans []Plan) error
}

// FileName is the file a FileStore keeps in its directory.
const FileName = "rollouts.json"

// maxFileSize bounds what Load reads: at most one plan per flag, each with
// at most 200 events, is far below it.
const maxFileSize = 4 << 20

// FileStore is a PlanStore in one JSON file, written to a temporary file,
// synced and renamed over the old one, so a crash leaves either the old
// plans or the new ones. It is safe for concurrent use.
type FileStore struct {
	path string     // static after construction
	mu   sync.Mutex // serialises Save
}

var _ PlanStore = (*FileStore)(nil)

// NewFileStore returns a store of the file FileName in dir (the server's
// data directory). The directory must exist.
func NewFileStore(dir string) *FileStore {
	return &FileStore{path: filepath.Join(dir, FileName)}
}

// Path returns the file's path.
func (s *FileStore) Path() string { return s.path }

// Load reads the plans. A missing file holds none; a file that is too
// large or does not decode to valid plans is an error.
func (s *FileStore) Load(ctx context.Context) ([]Plan, error) {
	f, err := os.Open(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("rollout: %s is over %d bytes", s.path, maxFileSize)
	}
	plans, err := DecodePlans(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.path, err)
	}
	return plans, nil
}

// Save replaces the file with plans.
func (s *FileStore) Save(ctx context.Context, plans []Plan) error {
	data, err := EncodePlans(plans)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	dir := filepath.Dir(s.path)
	tmp, err := os.CreateTemp(dir, "."+FileName+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // fails harmlessly once renamed
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), s.path); err != nil {
		return err
	}
	return syncDir(dir)
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// fileFormat is the stored document. Version 1 is the only one.
type fileFormat struct {
	Version int    `json:"version"`
	Plans   []Plan `json:"plans"`
}

// EncodePlans returns the stored form of plans, the one DecodePlans reads.
// Other PlanStores (the cluster's) may use it too.
func EncodePlans(plans []Plan) ([]byte, error) {
	if plans == nil {
		plans = []Plan{}
	}
	return json.MarshalIndent(fileFormat{Version: 1, Plans: plans}, "", "  ")
}

// DecodePlans reads what EncodePlans wrote. It refuses trailing data,
// another version, a flag listed twice and any plan that is not valid; the
// error then says which plan and why.
func DecodePlans(data []byte) ([]Plan, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	var ff fileFormat
	if err := dec.Decode(&ff); err != nil {
		return nil, fmt.Errorf("rollout: decode plans: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("rollout: decode plans: data after the JSON object")
	}
	if ff.Version != 1 {
		return nil, fmt.Errorf("rollout: decode plans: version %d, want 1", ff.Version)
	}
	seen := make(map[string]bool, len(ff.Plans))
	for i := range ff.Plans {
		p := &ff.Plans[i]
		if err := p.validate(); err != nil {
			return nil, fmt.Errorf("plan %d (%q): %w", i, p.Flag, err)
		}
		if seen[p.Flag] {
			return nil, fmt.Errorf("rollout: decode plans: %q has two plans", p.Flag)
		}
		seen[p.Flag] = true
	}
	return ff.Plans, nil
}

// memStore is the PlanStore of a Manager configured without one: plans
// then last as long as the process.
type memStore struct {
	mu    sync.Mutex
	plans []Plan // guarded by mu
}

func (s *memStore) Load(context.Context) ([]Plan, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return clonePlans(s.plans), nil
}

func (s *memStore) Save(_ context.Context, plans []Plan) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.plans = clonePlans(plans)
	return nil
}

func clonePlans(plans []Plan) []Plan {
	out := make([]Plan, len(plans))
	for i, p := range plans {
		out[i] = p.clone()
	}
	return out
}
