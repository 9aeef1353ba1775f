package featureflags

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/chatd/chatd/internal/syncbuf"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// count is how many times substr was logged.
func count(b *syncbuf.Buffer, substr string) int { return strings.Count(b.String(), substr) }

func newLogger() (*slog.Logger, *syncbuf.Buffer) {
	b := &syncbuf.Buffer{}
	return slog.New(slog.NewTextHandler(b, nil)), b
}

// fixedClock is an injected clock for audit timestamps.
var fixedTime = time.Date(2026, 11, 3, 10, 0, 0, 0, time.UTC)

func newTestStore(t *testing.T) (*Store, *syncbuf.Buffer) {
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
