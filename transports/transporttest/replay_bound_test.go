package transporttest

import (
	"bytes"
	"fmt"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/chatd/chatd/core/protocol"
)

// Replays are bounded in memory: 40 slow readers replaying a 5,000-message
// room from seq 0 at once keep the heap within 150 MB of where it started,
// while a canary on each transport keeps chatting.
// Each catch-up keeps at most a replay window queued (not the backlog),
// and the node runs a bounded number of catch-ups at once. Before these
// bounds, each replaying session held its whole queue (1024 frames) plus
// the batch being written: about 180 MB for this test.
func TestReplayMemoryIsBounded(t *testing.T) {
	const (
		room    = "archive"
		history = 5000
		readers = 40
		bound   = 150 << 20
	)
	e := NewEnv(t, Options{Hub: fast})
	fill(t, e, room, history, strings.Repeat("r", 2000))
	canary := newCanary(t, e)

	base := liveHeap()
	heap := startHeapSampler()

	last := []byte(fmt.Sprintf(`"seq":%d,`, history))
	var wg sync.WaitGroup
	for i := range readers {
		c := dialRaw(t, e, e.Token(t, fmt.Sprintf("reader%d", i), Claims{}), smallReadBuffer)
		c.send(protocol.Envelope{Type: protocol.TypeJoin, Room: room, Since: ptr(0), Ref: "j"})
		wg.Go(func() {
			if err := readUntil(c.conn, last); err != nil {
				t.Errorf("reader %d: %v", i, err)
			}
		})
	}
	replayed := make(chan struct{})
	go func() { wg.Wait(); close(replayed) }()
	chatted := canary.chatUntil(replayed)
	_, peak := heap.Stop()
	growth := int64(peak) - int64(base)
	t.Logf("%d readers replayed %d messages each; heap grew by at most %d MB; the canary chatted %d messages meanwhile",
		readers, history, growth>>20, chatted)
	if growth > bound {
		t.Fatalf("heap grew by %d MB during the replays, want under %d MB", growth>>20, bound>>20)
	}
}

// smallReadBuffer dials with a 32 KiB receive buffer: readers that the
// server outpaces, without the crawl of a tiny TCP window.
var smallReadBuffer = &websocket.Dialer{
	ReadBufferSize: 1024,
	NetDialContext: (&net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return setReadBuffer(rc, 32<<10)
	}}).DialContext,
}

// readUntil reads frames from c until one holds want.
func readUntil(c *websocket.Conn, want []byte) error {
	buf := make([]byte, 0, 64<<10)
	for {
		var err error
		if buf, err = ReadMessage(c, buf); err != nil {
			return err
		}
		if bytes.Contains(buf, want) {
			return nil
		}
	}
}
