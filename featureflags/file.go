package featureflags

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
)

// The flags file is one JSON object:
//
//	{"flags": [
//	  {"name": "typing", "enabled": true, "rollout": 50},
//	  {"name": "transport.websocket", "enabled": false}
//	]}
//
// "name" is required and must be in the registry. "enabled" and "rollout"
// (0–100) may be left out; each then takes the registry default. A flag the
// file does not list takes its default too: the file is the whole state.
// Unknown fields, unknown names, a name listed twice and trailing data are
// errors, and a file with an error is not applied at all. Add a new flag
// name to a file shared by several nodes only once every node knows it.

// maxFileSize bounds what a reload reads.
const maxFileSize = 1 << 20

type fileFlag struct {
	Name    string `json:"name"`
	Enabled *bool  `json:"enabled"`
	Rollout *int   `json:"rollout"`
}

type fileFormat struct {
	Flags []fileFlag `json:"flags"`
}

// ParseFile decodes and validates a flags file (format above). The error
// wraps ErrUnknownFlag or ErrInvalid.
func ParseFile(data []byte) ([]Flag, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var ff fileFormat
	if err := dec.Decode(&ff); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: data after the JSON object", ErrInvalid)
	}
	out := make([]Flag, 0, len(ff.Flags))
	seen := make(map[string]bool, len(ff.Flags))
	for _, e := range ff.Flags {
		d, ok := byName[e.Name]
		if !ok {
			return nil, fmt.Errorf("%w: %q", ErrUnknownFlag, e.Name)
		}
		if seen[e.Name] {
			return nil, fmt.Errorf("%w: %s is listed twice", ErrInvalid, e.Name)
		}
		seen[e.Name] = true
		f := d.Default()
		if e.Enabled != nil {
			f.Enabled = *e.Enabled
		}
		if e.Rollout != nil {
			f.Rollout = *e.Rollout
		}
		if err := f.Validate(); err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}

// FileSource keeps a Target (usually a *Store) in step with a flags file.
// Set the fields, then call Load, Run or both; do not change them after.
type FileSource struct {
	Path   string
	Target Target
	// Logger receives reload failures. Default slog.Default().
	Logger *slog.Logger
	// Interval is how often Run checks the file. Default 1s.
	Interval time.Duration
	// Debounce is how long the file must stay unchanged before Run reloads
	// it, so a burst of writes is read once. Default 100ms.
	Debounce time.Duration

	mu   sync.Mutex
	last []byte // content last applied; guarded by mu; nil until then
}

// WatchFile loads the flags file at path into target, then reloads it on
// every change until ctx ends. It returns the error at once if the first
// load fails, so a bad --flags file stops startup; after that, a bad file
// is logged and the last good state kept. It returns nil when ctx ends.
func WatchFile(ctx context.Context, path string, target Target, logger *slog.Logger) error {
	fs := &FileSource{Path: path, Target: target, Logger: logger}
	if err := fs.Load(); err != nil {
		return err
	}
	return fs.Run(ctx)
}

// Load reads the file and applies it with Target.Replace, under the actor
// "file:<path>". Content equal to what was last applied is not applied
// again, so touching the file does not undo admin changes.
func (fs *FileSource) Load() error {
	data, err := readLimited(fs.Path)
	if err != nil {
		return fmt.Errorf("featureflags: read flags file: %w", err)
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.last != nil && bytes.Equal(data, fs.last) {
		return nil
	}
	flags, err := ParseFile(data)
	if err == nil {
		err = fs.Target.Replace(flags, "file:"+fs.Path)
	}
	if err != nil {
		return fmt.Errorf("featureflags: %s: %w", fs.Path, err)
	}
	fs.last = data
	return nil
}

// Run loads the file, then reloads it whenever it changes, until ctx ends;
// it returns nil then. A file that is missing, unreadable or invalid is
// logged and the last good state kept; Run never gives up once started.
//
// Run watches the file's directory with fsnotify, not the file, so editors
// that save by renaming a new file over the old one, and symlink swaps
// (Kubernetes ConfigMaps), are seen. Any event in the directory arms a
// Debounce timer; the reload then skips content already applied.
func (fs *FileSource) Run(ctx context.Context) error {
	debounce := fs.Debounce
	if debounce <= 0 {
		debounce = 100 * time.Millisecond
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("featureflags: watch flags file: %w", err)
	}
	defer w.Close()
	if err := w.Add(filepath.Dir(fs.Path)); err != nil {
		return fmt.Errorf("featureflags: watch flags file: %w", err)
	}
	fs.reload()
	settle := time.NewTimer(debounce)
	settle.Stop()
	defer settle.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-w.Events:
			if !ok {
				return nil
			}
			settle.Reset(debounce)
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			fs.logger().Warn("featureflags: watching the flags file", "path", fs.Path, "err", err)
			settle.Reset(debounce) // an overflow may hide a change
		case <-settle.C:
			fs.reload()
		}
	}
}

func (fs *FileSource) logger() *slog.Logger {
	if fs.Logger == nil {
		return slog.Default()
	}
	return fs.Logger
}

func (fs *FileSource) reload() {
	if err := fs.Load(); err != nil {
		log := fs.Logger
		if log == nil {
			log = slog.Default()
		}
		log.Error("featureflags: flags file not applied; keeping the last good flags",
			"path", fs.Path, "err", err)
	}
}

func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err == nil && len(data) > maxFileSize {
		err = errors.New("file is larger than 1 MiB")
	}
	return data, err
}
