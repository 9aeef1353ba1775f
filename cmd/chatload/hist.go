package main

import (
	"math"
	"math/bits"
	"slices"
	"sync/atomic"
	"time"
)

// Histogram layout: values in microseconds, exact below 128 µs, then 64
// buckets per power of two, so a bucket is at most 1/64 of its value wide
// and a percentile read at the bucket's middle is within 0.8% of the
// truth. Values are capped at 2^40 µs (12 days): 35 octaves, 2304
// counters, 18 KiB per histogram, whatever the number of samples.
const (
	histSub     = 64
	histOctaves = 35
	histBuckets = (histOctaves + 1) * histSub
	histMaxUS   = 1<<40 - 1
)

// Histogram counts durations in fixed log-linear buckets. Record is safe
// for concurrent use and allocation-free; readers see a consistent
// enough view (each counter is atomic; a Record racing a read may be
// half counted).
type Histogram struct {
	counts [histBuckets]atomic.Uint64
	n      atomic.Uint64
	sumUS  atomic.Uint64
	maxUS  atomic.Uint64
}

// bucket returns the index of a value in microseconds.
func bucket(us uint64) int {
	if us < 2*histSub {
		return int(us)
	}
	shift := bits.Len64(us) - 7 // us>>shift is in [64, 128)
	return shift*histSub + int(us>>shift)
}

// bucketMid returns the middle of bucket i, in microseconds.
func bucketMid(i int) float64 {
	if i < 2*histSub {
		return float64(i)
	}
	shift := i/histSub - 1
	low := uint64(i%histSub+histSub) << shift
	return float64(low) + float64(uint64(1)<<shift)/2
}

// Record adds one duration; negative durations count as zero.
func (h *Histogram) Record(d time.Duration) {
	us := uint64(max(d, 0) / time.Microsecond)
	us = min(us, histMaxUS)
	h.counts[bucket(us)].Add(1)
	h.n.Add(1)
	h.sumUS.Add(us)
	for {
		m := h.maxUS.Load()
		if us <= m || h.maxUS.CompareAndSwap(m, us) {
			return
		}
	}
}

// Count returns the number of values recorded.
func (h *Histogram) Count() uint64 { return h.n.Load() }

// Summary returns the count, mean, percentiles and maximum, in
// milliseconds. An empty histogram gives zeros.
func (h *Histogram) Summary() Summary {
	var counts [histBuckets]uint64
	var total uint64
	for i := range counts {
		counts[i] = h.counts[i].Load()
		total += counts[i]
	}
	s := Summary{Count: total}
	if total == 0 {
		return s
	}
	s.AvgMS = float64(h.sumUS.Load()) / float64(h.n.Load()) / 1000
	s.MaxMS = float64(h.maxUS.Load()) / 1000
	q := func(p float64) float64 {
		rank := uint64(math.Ceil(p * float64(total)))
		var seen uint64
		for i, c := range counts {
			if seen += c; seen >= max(rank, 1) {
				return math.Min(bucketMid(i), float64(h.maxUS.Load())) / 1000
			}
		}
		return s.MaxMS
	}
	s.P50MS, s.P95MS, s.P99MS = q(0.50), q(0.95), q(0.99)
	return s
}

// Summary is a distribution of durations in milliseconds.
type Summary struct {
	Count uint64  `json:"count"`
	AvgMS float64 `json:"avg_ms"`
	P50MS float64 `json:"p50_ms"`
	P95MS float64 `json:"p95_ms"`
	P99MS float64 `json:"p99_ms"`
	MaxMS float64 `json:"max_ms"`
}

// exactSummary summarizes a bounded set of samples exactly (sorted
// order statistics, nearest rank). It sorts samples in place.
func exactSummary(samples []time.Duration) Summary {
	if len(samples) == 0 {
		return Summary{}
	}
	slices.Sort(samples)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	var sum time.Duration
	for _, d := range samples {
		sum += d
	}
	q := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(samples)))) - 1
		return ms(samples[max(i, 0)])
	}
	return Summary{Count: uint64(len(samples)), AvgMS: ms(sum) / float64(len(samples)),
		P50MS: q(0.5), P95MS: q(0.95), P99MS: q(0.99), MaxMS: ms(samples[len(samples)-1])}
}
