package files

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// meta is what the store keeps about a file, as JSON under meta/<id>, so
// that any node can answer for it. It is written last when a file is
// stored and removed last when it is deleted.
type meta struct {
	V         int       `json:"v"` // metaVersion
	ID        string    `json:"id"`
	Room      string    `json:"room"`
	User      string    `json:"user"`
	Name      string    `json:"name"`
	Size      int64     `json:"size"`
	Type      string    `json:"type"`
	Width     int       `json:"width,omitempty"`
	Height    int       `json:"height,omitempty"`
	ThumbType string    `json:"thumb_type,omitempty"` // the thumbnail's content type; "" when there is none
	SHA256    string    `json:"sha256"`
	Created   time.Time `json:"created"`
	// Message is the client id of the message that carries the file, set
	// by Resolve; "" while the upload is pending.
	Message string `json:"message,omitempty"`
}

const metaVersion = 1

// maxMeta bounds a metadata read: ours are well under 2 KiB, and the
// bucket may be shared, so a corrupt object costs no more than this.
const maxMeta = 16 << 10

func (m *meta) userHash() string { return hashKey(m.User) }
func (m *meta) roomHash() string { return hashKey(m.Room) }

// readMeta reads the metadata of id. A missing file is a not_found *Error.
func (s *Service) readMeta(ctx context.Context, id string) (*meta, error) {
	if !ValidID(id) {
		return nil, errNoFile
	}
	r, err := s.store.Open(ctx, metaKey(id))
	if errors.Is(err, ErrNotFound) {
		return nil, errNoFile
	}
	if err != nil {
		return nil, err
	}
	defer r.Close()
	b, err := io.ReadAll(io.LimitReader(r, maxMeta+1))
	if err != nil {
		return nil, fmt.Errorf("files: read meta %s: %w", id, err)
	}
	var m meta
	if len(b) > maxMeta {
		return nil, fmt.Errorf("files: meta %s is larger than %d bytes", id, maxMeta)
	}
	if err := json.Unmarshal(b, &m); err != nil || m.V != metaVersion || m.ID != id {
		return nil, fmt.Errorf("files: meta %s is corrupt (version %d): %v", id, m.V, err)
	}
	return &m, nil
}

// writeMeta stores m, replacing what was there.
func (s *Service) writeMeta(ctx context.Context, m *meta) error {
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("files: encode meta: %w", err) // unreachable: plain fields
	}
	return s.writeAll(ctx, metaKey(m.ID), "application/json", b)
}

// writeAll stores b at key.
func (s *Service) writeAll(ctx context.Context, key, contentType string, b []byte) error {
	w, err := s.store.Create(ctx, key, contentType)
	if err != nil {
		return err
	}
	if _, err := w.Write(b); err != nil {
		w.Abort()
		return fmt.Errorf("files: write %s: %w", key, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("files: commit %s: %w", key, err)
	}
	return nil
}

// file is the public shape of m.
func (s *Service) file(m *meta) File {
	f := File{
		ID:     m.ID,
		Name:   m.Name,
		Size:   m.Size,
		Type:   m.Type,
		URL:    s.cfg.URLPrefix + "/" + m.ID,
		Width:  m.Width,
		Height: m.Height,
	}
	if m.ThumbType != "" {
		f.ThumbURL = f.URL + "/thumb"
	}
	return f
}
