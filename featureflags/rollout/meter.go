package rollout

import (
	"math/bits"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chatd/chatd/featureflags"
)

// Meter keeps per-user event counts for the flags that have a plan in
// progress, split by the user's bucket (featureflags.Bucket, 1–100), so
// that the Manager can sum them into the cohort inside the rollout
// (buckets at most the percent) and the cohort outside, whatever the
// percent is at the time.
//
// The server calls it for every user event; its method set is the hub's
// observer interface. With no plan in progress each call is one atomic
// load. With one, a call hashes the user once per watched flag and adds to
// one counter of that user's bucket: no lock, no allocation, and
// contention spread over 100 counters (see BenchmarkMeterDelivered).
//
// The zero value is ready; a nil *Meter ignores every call. Methods are
// safe for concurrent use.
type Meter struct {
	mu    sync.Mutex                   // serialises watch changes
	flags atomic.Pointer[[]*flagMeter] // the watched flags; replaced, never changed, under mu
}

// flagMeter holds one watched flag's counters. Its address identifies one
// watch: a flag watched again gets a new flagMeter, counting from zero.
type flagMeter struct {
	flag    string // static
	buckets [100]bucketMeter
}

// bucketMeter is the counters of the users in one bucket. Every field is
// cumulative except open, a gauge; all are atomic.
type bucketMeter struct {
	open     atomic.Int64 // sessions open now (negative when sessions opened before the watch close)
	opened   atomic.Int64
	closed   atomic.Int64
	abnormal atomic.Int64 // closes with a code other than 1000, 1001, 4001, 4012, 4013
	errors   atomic.Int64
	hist     [histBuckets]atomic.Uint64 // delivery latency, see histIndex
}

// SessionOpened counts a session opened for user.
func (m *Meter) SessionOpened(user, transport string) {
	for _, f := range m.watched(user) {
		b := f.bucketOf(user)
		b.opened.Add(1)
		b.open.Add(1)
	}
}

// SessionClosed counts a session of user ending with the protocol close
// code. 1000, 1001, 4001 (switch transport), 4012 (token expired) and
// 4013 (ticket expired) are clean; every other code is an abnormal
// disconnect.
func (m *Meter) SessionClosed(user, transport string, code int) {
	abnormal := !cleanClose(code)
	for _, f := range m.watched(user) {
		b := f.bucketOf(user)
		b.closed.Add(1)
		b.open.Add(-1)
		if abnormal {
			b.abnormal.Add(1)
		}
	}
}

// ErrorReply counts an error answered to user, in a session or over HTTP.
// An error to an unknown user ("") is not counted.
func (m *Meter) ErrorReply(user, code string) {
	for _, f := range m.watched(user) {
		f.bucketOf(user).errors.Add(1)
	}
}

// Delivered counts a live message written to user, latency after it was
// committed. It runs once per delivery, on the hot path.
func (m *Meter) Delivered(user string, latency time.Duration) {
	fs := m.watched(user)
	if len(fs) == 0 {
		return
	}
	i := histIndex(latency)
	for _, f := range fs {
		f.bucketOf(user).hist[i].Add(1)
	}
}

// watched returns the watched flags, none for a nil Meter or an unknown
// user. The slice is shared: never change it.
func (m *Meter) watched(user string) []*flagMeter {
	if m == nil || user == "" {
		return nil
	}
	if p := m.flags.Load(); p != nil {
		return *p
	}
	return nil
}

func (f *flagMeter) bucketOf(user string) *bucketMeter {
	return &f.buckets[featureflags.Bucket(f.flag, user)-1]
}

func cleanClose(code int) bool {
	switch code {
	case 1000, 1001, 4001, 4012, 4013:
		return true
	}
	return false
}

// watch makes the meter count for exactly the given flags. A flag already
// watched keeps its counters; a new one starts from zero.
func (m *Meter) watch(flags []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var cur []*flagMeter
	if p := m.flags.Load(); p != nil {
		cur = *p
	}
	same := len(cur) == len(flags)
	for i := 0; same && i < len(cur); i++ {
		same = cur[i].flag == flags[i]
	}
	if same {
		return
	}
	next := make([]*flagMeter, 0, len(flags))
	for _, f := range flags {
		if i := slices.IndexFunc(cur, func(fm *flagMeter) bool { return fm.flag == f }); i >= 0 {
			next = append(next, cur[i])
		} else {
			next = append(next, &flagMeter{flag: f})
		}
	}
	if len(next) == 0 {
		m.flags.Store(nil)
		return
	}
	m.flags.Store(&next)
}

// meterOf returns the counters of a watched flag, nil if it is not watched.
func (m *Meter) meterOf(flag string) *flagMeter {
	if p := m.flags.Load(); p != nil {
		for _, f := range *p {
			if f.flag == flag {
				return f
			}
		}
	}
	return nil
}

// cohorts sums the counters into the cohorts outside (0) and inside (1) a
// rollout of percent.
func (f *flagMeter) cohorts(percent int) [2]cohort {
	var c [2]cohort
	for i := range f.buckets {
		b, side := &f.buckets[i], 0
		if i+1 <= percent {
			side = 1
		}
		s := &c[side]
		s.open += b.open.Load()
		s.opened += b.opened.Load()
		s.closed += b.closed.Load()
		s.abnormal += b.abnormal.Load()
		s.errors += b.errors.Load()
		for j := range b.hist {
			s.hist[j] += b.hist[j].Load()
		}
	}
	return c
}

// The latency histogram is log-linear: exact below 4 µs, then four
// buckets per power of two, so a bucket is at most 25% wide; the last one
// holds everything from about 2 minutes up.
const histBuckets = 4 * 26

// histIndex returns the histogram bucket of d.
func histIndex(d time.Duration) int {
	us := uint64(0)
	if d > 0 {
		us = uint64(d / time.Microsecond)
	}
	if us < 4 {
		return int(us)
	}
	e := bits.Len64(us) - 1 // 2 or more
	i := 4*(e-1) + int(us>>(e-2)&3)
	return min(i, histBuckets-1)
}

// histUpper returns the upper bound of bucket i.
func histUpper(i int) time.Duration {
	if i < 4 {
		return time.Duration(i+1) * time.Microsecond
	}
	e, sub := i/4+1, i%4
	return time.Duration(uint64(5+sub)<<(e-2)) * time.Microsecond
}

// quantile returns the upper bound of the bucket that holds the q-th
// quantile of h, and the number of values in h.
func quantile(h *[histBuckets]uint64, q float64) (time.Duration, int64) {
	var n uint64
	for _, v := range h {
		n += v
	}
	if n == 0 {
		return 0, 0
	}
	rank := uint64(q * float64(n))
	if rank >= n {
		rank = n - 1
	}
	var seen uint64
	for i, v := range h {
		seen += v
		if seen > rank {
			return histUpper(i), int64(n)
		}
	}
	return histUpper(histBuckets - 1), int64(n)
}
