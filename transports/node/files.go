package node

import (
	"context"
	"log/slog"
	"time"

	"github.com/chatd/chatd/core"
	"github.com/chatd/chatd/core/auth"
	"github.com/chatd/chatd/core/files"
	"github.com/chatd/chatd/core/protocol"
	tfiles "github.com/chatd/chatd/transports/files"
)

var errFilesOff = protocol.Errorf(protocol.CodeFeatureDisabled,
	"file sharing is off for now (the server is under load, or the files flag is off for you); try again later")

// filesHandler serves the node's file uploads and downloads. Uploads are
// gated by the files feature (flag and level); downloads never are.
func (n *Node) filesHandler(svc *files.Service) *tfiles.Handler {
	var gate func(context.Context, auth.Identity) error
	if p := n.Policy; p != nil {
		gate = func(_ context.Context, who auth.Identity) error {
			if !p.FeatureOn(who.User, core.FeatureFiles) {
				return errFilesOff
			}
			return nil
		}
	}
	return tfiles.New(svc, tfiles.Config{Gate: gate})
}

// fileResolver lets the hub attach uploaded files to messages.
type fileResolver struct{ svc *files.Service }

func (r fileResolver) Resolve(ctx context.Context, user, room, msgID string, ids []string) ([]protocol.File, error) {
	got, err := r.svc.Resolve(ctx, user, room, msgID, ids)
	if err != nil {
		return nil, err
	}
	out := make([]protocol.File, len(got))
	for i, f := range got {
		out[i] = protocol.File(f)
	}
	return out, nil
}

// fileReaper removes the files of deleted and pruned messages. The engine
// reports them on its commit path, which must not wait: they queue here
// (bounded; what overflows, or comes after stop, is left for the store's
// sweep and Prune) and one worker removes them.
type fileReaper struct {
	svc   *files.Service // Static after construction.
	log   *slog.Logger   // Static after construction.
	queue chan string    // file ids; never closed (the engine may report after stop)
	quit  chan struct{}  // closed by stop
	done  chan struct{}  // closed when the worker has returned
}

// reapQueue bounds the file ids waiting for removal.
const reapQueue = 4096

func newFileReaper(svc *files.Service, log *slog.Logger) *fileReaper {
	r := &fileReaper{svc: svc, log: log, queue: make(chan string, reapQueue), quit: make(chan struct{}),
		done: make(chan struct{})}
	go r.run()
	return r
}

// onDelete is core.Config.OnDelete: it queues without blocking.
func (r *fileReaper) onDelete(room string, fs []protocol.File) {
	for _, f := range fs {
		select {
		case r.queue <- f.ID:
		default:
			r.log.Warn("files: removal queue full; the file stays until pruned", "room", room, "file", f.ID)
		}
	}
}

func (r *fileReaper) run() {
	defer close(r.done)
	for {
		select {
		case id := <-r.queue:
			r.remove(id)
		case <-r.quit:
			for { // what was queued before stop
				select {
				case id := <-r.queue:
					r.remove(id)
				default:
					return
				}
			}
		}
	}
}

func (r *fileReaper) remove(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.svc.Delete(ctx, id); err != nil {
		r.log.Warn("files: removing a deleted message's file failed", "file", id, "err", err)
	}
}

// stop removes what is queued, then returns. Call it after the hub stops.
func (r *fileReaper) stop() {
	close(r.quit)
	<-r.done
}
