package files

import (
	"context"
	"errors"
	"path"
	"strings"
	"time"

	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/core/protocol"
)

// Download is an open file or thumbnail, ready to serve. The caller
// closes Body.
type Download struct {
	Name    string    // the file name to offer (CleanName'd at upload)
	Type    string    // the content type to send: one of the Type constants
	Inline  bool      // whether it may display in the page (see Inline)
	Size    int64     // bytes
	ETag    string    // a strong validator, quoted; files never change
	Created time.Time // when it was uploaded
	Body    Reader    // seekable, for ranges
}

// Open opens file id (its thumbnail when thumb is set) for who to
// download. An unknown id, or an image's thumbnail that was never made,
// is not_found; a file sent to a room who may not read
// (Authorizer.CanRead) is forbidden.
func (s *Service) Open(ctx context.Context, who auth.Identity, id string, thumb bool) (*Download, error) {
	if who.User == "" {
		return nil, protocol.Errorf(protocol.CodeUnauthorized, "no user")
	}
	m, err := s.readMeta(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := s.cfg.Authorizer.CanRead(ctx, who, m.Room); err != nil {
		return nil, err
	}
	d := &Download{Name: m.Name, Type: m.Type, Inline: Inline(m.Type), Size: m.Size, ETag: `"` + m.ID + `"`, Created: m.Created}
	key := dataKey(m.userHash(), m.ID)
	if thumb {
		if m.ThumbType == "" {
			return nil, errNoFile
		}
		key, d.Type, d.Inline, d.ETag = thumbKey(m.ID), m.ThumbType, true, `"`+m.ID+`.thumb"`
		d.Name = strings.TrimSuffix(m.Name, path.Ext(m.Name)) + ".thumb" + thumbExt(m.ThumbType)
	}
	r, err := s.store.Open(ctx, key)
	if errors.Is(err, ErrNotFound) {
		return nil, errNoFile // being deleted
	}
	if err != nil {
		return nil, err
	}
	d.Body, d.Size = r, r.Size()
	return d, nil
}

func thumbExt(t string) string {
	if t == TypePNG {
		return ".png"
	}
	return ".jpg"
}
