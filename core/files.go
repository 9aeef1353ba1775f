package core

import (
	"context"
	"fmt"

	"github.com/chatd/chatd/core/protocol"
)

// FileResolver turns the file ids of a send into the files the message
// carries. The file service implements it; the hub calls it for every
// send with files (Config.Files), once the send is known not to be a
// retry of a stored one.
type FileResolver interface {
	// Resolve returns the file with each id, in the order of ids, if
	// user uploaded it to room and may attach it to the message with
	// client id msgID. A refusal is a *protocol.Error (not_found for an
	// unknown id, forbidden, and so on), which the sender gets as is; any
	// other error is internal.
	Resolve(ctx context.Context, user, room, msgID string, ids []string) ([]protocol.File, error)
}

// FileReleaser is what an engine's registered Handler may also be, to
// hear of files that no retained message references any more: those of
// a message that was deleted, and those of messages pruned by retention.
// The engine that removed them reports them once, after the removal is
// durable, on its own goroutine: ReleaseFiles must not block. A file
// reported here may still be named by a client's history or replay
// that was read before; it is removed for good.
type FileReleaser interface {
	ReleaseFiles(room string, files []protocol.File)
}

// ReleaseFiles passes files to the registered handler if it is a
// FileReleaser. Engines call it after the commit that removed the
// messages that carried them.
func (b *LocalBroker) ReleaseFiles(room string, files []protocol.File) {
	if h := b.h.Load(); h != nil && len(files) > 0 {
		if fr, ok := (*h).(FileReleaser); ok {
			fr.ReleaseFiles(room, files)
		}
	}
}

// ReleaseFiles implements FileReleaser: it hands files to
// Config.OnDelete, if set.
func (h *Hub) ReleaseFiles(room string, files []protocol.File) {
	if h.cfg.OnDelete != nil && len(files) > 0 {
		h.cfg.OnDelete(room, files)
	}
}

var _ FileReleaser = (*Hub)(nil)

// errResolver reports a FileResolver answer that does not match its
// question: a bug in the resolver, internal to the client.
func errResolver(format string, args ...any) error {
	return fmt.Errorf("core: file resolver returned "+format, args...)
}
