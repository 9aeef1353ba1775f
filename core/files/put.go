package files

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/core/protocol"
)

// ErrBody wraps an error reading the upload itself (the client went away,
// its body deadline passed, its framing broke), as opposed to a refusal
// or a storage failure; the transport decides how to answer it.
var ErrBody = errors.New("files: reading the upload failed")

// copyBuf is the one buffer an upload streams through.
const copyBuf = 32 << 10

// undoTimeout bounds the clean-up after a failed upload, and each removal
// of a file.
const undoTimeout = 30 * time.Second

// Put stores a file that who uploads to room under the name the client
// gave (cleaned by CleanName), reading body to its end, and returns the
// File to answer with. In order, it checks:
//
//   - room is a valid name and who may write to it (Authorizer.CanWrite);
//   - who's rate limit (rate_limited);
//   - who's quota, from the bytes stored and those that who's uploads
//     under way on this node have reserved (too_large when it is used
//     up), reserving what this one may store;
//
// then streams body to storage through one fixed buffer, hashing and
// counting, and stops with too_large as soon as it passes MaxSize or
// what is left of the quota, leaving nothing behind. The type is sniffed
// from the first bytes; an image (PNG, JPEG, GIF, WebP) must then decode
// within the pixel caps (see inspect) and gets its dimensions and a
// thumbnail. A read error from body is wrapped in ErrBody.
//
// The file is pending until a message carries it (see Resolve).
func (s *Service) Put(ctx context.Context, who auth.Identity, room, name string, body io.Reader) (File, error) {
	return s.PutSized(ctx, who, room, name, body, -1)
}

// PutSized is Put for a body known to hold at most size bytes (negative:
// not known), such as a request's Content-Length: the upload reserves no
// more than that of the user's quota while it runs (see flights), so that
// the user's other uploads meanwhile may have the rest.
func (s *Service) PutSized(ctx context.Context, who auth.Identity, room, name string, body io.Reader, size int64) (File, error) {
	if err := s.admit(ctx, who, room); err != nil {
		return File{}, err
	}
	fl := s.quota.join(who.User)
	reserved := new(int64) // zeroed once the data is committed (settle)
	defer func() { s.quota.leave(who.User, fl, *reserved) }()
	fl.mu.Lock()
	used, err := s.usage(ctx, who.User)
	if err != nil {
		fl.mu.Unlock()
		return File{}, err
	}
	used += s.quota.reserved(fl)
	limit, quotaBound := s.cfg.MaxSize, false
	if q := s.cfg.Quota; q > 0 && q-used < limit {
		limit, quotaBound = q-used, true
	}
	if limit > 0 && s.cfg.Quota > 0 {
		*reserved = limit
		if size >= 0 && size < *reserved {
			*reserved = size
		}
		s.quota.reserve(fl, *reserved)
	}
	fl.mu.Unlock()
	if limit <= 0 {
		s.stats.tooLarge.Add(1)
		return File{}, protocol.Errorf(protocol.CodeTooLarge, "your files and uploads under way use all of your %d-byte quota", s.cfg.Quota)
	}
	m := &meta{V: metaVersion, ID: newID(), Room: room, User: who.User, Name: CleanName(name), Created: s.cfg.Now()}
	u := &upload{s: s, m: m, fl: fl, reserved: reserved}
	f, err := u.run(ctx, body, limit)
	if err != nil {
		fl.mu.Lock() // a data file a listing meets must not vanish under it
		u.undo()
		fl.mu.Unlock()
		if code, _ := protocol.CodeOf(err); code == protocol.CodeTooLarge && m.Size > limit {
			s.stats.tooLarge.Add(1)
			if quotaBound {
				err = protocol.Errorf(protocol.CodeTooLarge, "the file passes what is left of your %d-byte quota (%d bytes)", s.cfg.Quota, limit)
			}
		}
		return File{}, err
	}
	s.stats.uploads.Add(1)
	s.stats.bytes.Add(m.Size)
	return f, nil
}

// admit runs the checks that come before any byte is read.
func (s *Service) admit(ctx context.Context, who auth.Identity, room string) error {
	if who.User == "" {
		return protocol.Errorf(protocol.CodeUnauthorized, "no user")
	}
	if err := protocol.ValidRoom(room); err != nil {
		return err
	}
	if err := s.cfg.Authorizer.CanWrite(ctx, who, room); err != nil {
		return err
	}
	if !s.rates.allow(who.User, s.cfg.Now()) {
		s.stats.limited.Add(1)
		return protocol.Errorf(protocol.CodeRateLimited, "too many uploads; try again in a minute")
	}
	return nil
}

// upload is one Put in progress: the keys it wrote, so that a failure
// removes them. Owned by the goroutine that calls Put.
type upload struct {
	s       *Service
	m       *meta
	written []string
	// fl is the user's uploads under way; reserved, what this one holds
	// of the quota, given back as its data is committed (see stream).
	fl       *flight
	reserved *int64
}

// run writes the pending marker, the data, the thumbnail, the metadata,
// which makes the file exist, and the room's index entry. A crash before
// the metadata leaves keys that Sweep finds by the pending marker; one
// after it, a pending file that Sweep removes in time.
func (u *upload) run(ctx context.Context, body io.Reader, limit int64) (File, error) {
	s, m := u.s, u.m
	uh := m.userHash()
	if err := u.put(ctx, pendingKey(m.Created, uh, m.ID), "", nil); err != nil {
		return File{}, err
	}
	if err := u.stream(ctx, dataKey(uh, m.ID), body, limit); err != nil {
		return File{}, err
	}
	if _, ok := codecs[m.Type]; ok {
		pic, err := s.inspect(ctx, dataKey(uh, m.ID), m.Type)
		if err != nil {
			return File{}, err
		}
		m.Width, m.Height, m.ThumbType = pic.width, pic.height, pic.thumbType
		if err := u.put(ctx, thumbKey(m.ID), pic.thumbType, pic.thumb); err != nil {
			return File{}, err
		}
	}
	u.written = append(u.written, metaKey(m.ID))
	if err := s.writeMeta(ctx, m); err != nil {
		return File{}, err
	}
	if err := u.put(ctx, roomKey(m.roomHash(), m.ID), "", nil); err != nil {
		return File{}, err
	}
	return s.file(m), nil
}

// put writes a small blob and remembers its key.
func (u *upload) put(ctx context.Context, key, contentType string, b []byte) error {
	u.written = append(u.written, key)
	return u.s.writeAll(ctx, key, contentType, b)
}

// stream copies body to key through one buffer: it sniffs the type from
// the first SniffLen bytes, hashes and counts everything, and aborts the
// write once more than limit bytes came.
func (u *upload) stream(ctx context.Context, key string, body io.Reader, limit int64) error {
	buf := make([]byte, copyBuf)
	n, err := io.ReadFull(body, buf[:SniffLen])
	switch {
	case err == io.EOF:
		return protocol.Errorf(protocol.CodeBadRequest, "the file is empty")
	case err == io.ErrUnexpectedEOF:
		body = eof{} // the whole file is in buf
	case err != nil:
		return fmt.Errorf("%w: %w", ErrBody, err)
	}
	u.m.Type = Sniff(buf[:n])
	u.written = append(u.written, key)
	w, err := u.s.store.Create(ctx, key, u.m.Type)
	if err != nil {
		return err
	}
	h := sha256.New()
	size, err := copyCapped(io.MultiWriter(w, h), body, buf, n, limit)
	u.m.Size = size
	// The commit (a file store renames its temporary file into the user's
	// listing) and the abort (which removes it) wait for a listing of the
	// user's files in progress: a file that vanished under one failed it.
	// The reservation is given back in the same step as the commit, so a
	// listing counts the file once, either stored or reserved.
	u.fl.mu.Lock()
	defer u.fl.mu.Unlock()
	if err != nil {
		w.Abort()
		return err
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("files: commit %s: %w", key, err)
	}
	u.s.quota.settle(u.fl, u.reserved)
	u.m.SHA256 = hex.EncodeToString(h.Sum(nil))
	return nil
}

// eof is an empty reader.
type eof struct{}

func (eof) Read([]byte) (int, error) { return 0, io.EOF }

// copyCapped writes the head bytes already in buf, then copies r to w
// through buf, and returns the bytes written; past limit it stops with
// too_large. Read errors are wrapped in ErrBody.
func copyCapped(w io.Writer, r io.Reader, buf []byte, head int, limit int64) (int64, error) {
	n, k, rerr := int64(0), head, error(nil)
	for {
		n += int64(k)
		if n > limit {
			return n, protocol.Errorf(protocol.CodeTooLarge, "the file is larger than %d bytes", limit)
		}
		if k > 0 {
			if _, err := w.Write(buf[:k]); err != nil {
				return n, fmt.Errorf("files: write: %w", err)
			}
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, fmt.Errorf("%w: %w", ErrBody, rerr)
		}
		k, rerr = r.Read(buf)
	}
}

// undo removes what a failed Put wrote, newest first, with a context of
// its own: the request's may be what failed.
func (u *upload) undo() {
	ctx, cancel := context.WithTimeout(context.Background(), undoTimeout)
	defer cancel()
	for i := len(u.written) - 1; i >= 0; i-- {
		_ = u.s.store.Delete(ctx, u.written[i])
	}
}
