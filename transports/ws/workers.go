package ws

import "time"

// workerLinger is how long a frame worker with nothing to do waits for
// the next frame before it exits; as the session writers' linger, so
// that a steady stream of frames keeps a few workers busy rather than
// starting one per frame.
const workerLinger = 250 * time.Millisecond

// workers handle the frames that readers read, on goroutines that
// outlive a frame. Handling a frame goes deep (a send waits for the disk
// under the store's calls, a join reads history): 8 KiB of stack or
// more. Had the reader handled it, its stack would grow by copying from
// the 2 KiB it parks in, and a reader that keeps its grown stack costs
// an idle connection that much memory, while one that starts afresh
// grows again at its next frame (5.5% of the node's CPU in growing
// stacks in the chat workload at 5,000 users, on the slower of the two
// machines; 2.0% with workers, whose hand-over costs 1.8%). A worker's
// stack grows once and serves frame after frame, of any connection, and
// there are only as many workers as frames being handled at once.
//
// A reader hands its frame over and waits for it to be handled, so a
// connection's frames are still handled one at a time and in order.
type workers struct {
	// jobs carries a frame to a worker waiting for one. Unbuffered: a
	// send succeeds only when a worker is idle, else the reader starts
	// one. Static after construction.
	jobs chan *reader
}

func newWorkers() *workers { return &workers{jobs: make(chan *reader)} }

// handle hands data, a frame rd read, to a worker and returns once the
// session has handled it.
func (w *workers) handle(rd *reader, data []byte) {
	rd.data = data
	select {
	case w.jobs <- rd:
	default:
		go w.work(rd)
	}
	<-rd.handled
}

// work handles rd's frame, then the frames of whichever readers hand
// one over, until none has come for workerLinger.
func (w *workers) work(rd *reader) {
	var linger *time.Timer
	for {
		rd.sess.HandleFrame(rd.ctx, rd.data)
		rd.data = nil
		rd.handled <- struct{}{}
		if linger == nil {
			linger = time.NewTimer(workerLinger)
		} else {
			linger.Reset(workerLinger)
		}
		select {
		case rd = <-w.jobs:
		case <-linger.C:
			return
		}
	}
}
