package featureflags

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// logBuf is a goroutine-safe log sink for asserting on log lines.
type logBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuf) count(substr string) int { return strings.Count(b.String(), substr) }

func newLogger() (*slog.Logger, *logBuf) {
	b := &logBuf{}
	return slog.New(slog.NewTextHandler(b, nil)), b
}

// fixedClock is an injected clock for audit timestamps.
var fixedTime = time.Date(2026, 11, 3, 10, 0, 0, 0, time.UTC)

func newTestStore(t *testing.T) (*Store, *logBuf) {
	t.Helper()
	log, buf := newLogger()
	return NewStore(Config{Logger: log, Now: func() time.Time { return fixedTime }}), buf
}

const waitLimit = 10 * time.Second

// waitChange waits on a subscription until cond holds, failing after
// waitLimit. cond is checked first, so a change that already happened
// counts.
func waitChange(t *testing.T, ch <-chan struct{}, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(waitLimit)
	defer deadline.Stop()
	for !cond() {
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// eventually polls cond until it holds, failing after waitLimit. For
// things that send no notification, such as a log line.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
