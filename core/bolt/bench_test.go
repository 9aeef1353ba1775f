package bolt

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/chatd/chatd/core/protocol"
	"github.com/chatd/chatd/core/storetest"
)

// logMachine says where a benchmark ran: figures mean little without it.
func logMachine(b *testing.B) {
	b.Logf("machine: %d CPUs, GOMAXPROCS %d, %s/%s, %s; db on t.TempDir (fsync on)",
		runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.GOOS, runtime.GOARCH, runtime.Version())
}

// benchText is the 200-byte text that LIBRARIES.md's figures use.
var benchText = strings.Repeat("x", 200)

// BenchmarkAppendParallel measures durable appends per second from many
// concurrent appenders spread over 16 rooms: each Append returns only
// after its group's commit is fsynced. With a commit taking a few
// milliseconds, throughput grows with the number of appenders waiting on
// each commit, so it runs at 128 and at 512 of them.
func BenchmarkAppendParallel(b *testing.B) {
	logMachine(b)
	for _, perProc := range []int{64, 256} {
		appenders := perProc * runtime.GOMAXPROCS(0)
		b.Run(fmt.Sprintf("appenders=%d", appenders), func(b *testing.B) {
			benchAppend(b, perProc)
		})
	}
}

func benchAppend(b *testing.B, perProc int) {
	var commits, msgs atomic.Int64
	s := openBench(b, Config{})
	s.Register(storetest.Publisher(func(ms []protocol.Message) {
		commits.Add(1)
		msgs.Add(int64(len(ms)))
	}))
	var next atomic.Int64
	b.SetParallelism(perProc)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := next.Add(1)
			m := protocol.Message{Room: fmt.Sprint("room", n%16), ID: fmt.Sprint("id", n),
				From: "user", Name: "User", Text: benchText}
			if _, _, err := s.Append(b.Context(), m); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	if c := commits.Load(); c > 0 {
		b.ReportMetric(float64(msgs.Load())/float64(c), "msgs/commit")
	}
}

// BenchmarkSince measures reads of 50-message pages at random offsets in
// a 10000-message room, from parallel readers.
func BenchmarkSince(b *testing.B) {
	logMachine(b)
	s := openBench(b, Config{})
	fill(b, s, "r", 10000)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			p, err := s.Since(b.Context(), "r", rand.Uint64N(9950), 50)
			if err != nil || len(p.Messages) != 50 {
				b.Errorf("Since: %d messages, %v", len(p.Messages), err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N*50)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkSinceHead measures what a join or a catch-up with nothing new
// asks of each of its rooms: the bounds, Since at the head, over 1000
// rooms from parallel readers, with the bounds cache and without.
func BenchmarkSinceHead(b *testing.B) {
	logMachine(b)
	for _, tc := range []struct {
		name string
		size int
	}{{"cache=on", 0}, {"cache=off", -1}} {
		b.Run(tc.name, func(b *testing.B) {
			s := openBench(b, Config{BoundsCache: tc.size})
			const rooms = 1000
			for i := range rooms {
				if _, _, err := s.Append(b.Context(), protocol.Message{Room: fmt.Sprint("r", i), ID: "m", Text: benchText}); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					p, err := s.Since(b.Context(), fmt.Sprint("r", rand.IntN(rooms)), 1, 50)
					if err != nil || p.Head != 1 || len(p.Messages) != 0 {
						b.Errorf("Since: head %d, %d messages, %v", p.Head, len(p.Messages), err)
						return
					}
				}
			})
		})
	}
}

func openBench(b *testing.B, cfg Config) *Store {
	cfg.Path = b.TempDir() + "/bench.db"
	s, err := Open(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// fill appends n messages to room from 64 goroutines, so it commits in
// groups.
func fill(b *testing.B, s *Store, room string, n int) {
	errs := make(chan error, 64)
	for g := range 64 {
		go func() {
			var err error
			for i := g; i < n && err == nil; i += 64 {
				_, _, err = s.Append(b.Context(), protocol.Message{Room: room, ID: fmt.Sprint(i), Text: benchText})
			}
			errs <- err
		}()
	}
	for range 64 {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
}
