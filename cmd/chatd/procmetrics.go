package main

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs"
)

// anonRSSCollector is chat_process_anon_rss_bytes: the process's
// anonymous resident memory, RssAnon in /proc/self/status, read at scrape
// time. Memory growth alerts read it, or go_memstats_heap_inuse_bytes,
// never process_resident_memory_bytes: the RSS counts the pages of the
// store's file mapping (bbolt's mmap) that the kernel keeps in memory,
// which come and go with reads and are not growth. On a system without
// /proc/self/status (or without RssAnon in it, before Linux 4.5) the
// metric is absent.
type anonRSSCollector struct {
	desc *prometheus.Desc      // Static after construction.
	read func() (uint64, bool) // Static after construction.
}

func newAnonRSSCollector() *anonRSSCollector {
	return &anonRSSCollector{
		desc: prometheus.NewDesc("chat_process_anon_rss_bytes",
			"Anonymous resident memory of the process (RssAnon in /proc/self/status): the heap, stacks and "+
				"other private memory, without file mappings such as the store's.", nil, nil),
		read: readAnonRSS,
	}
}

// Describe implements prometheus.Collector.
func (c *anonRSSCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector: one reading, or none where the
// system does not report it.
func (c *anonRSSCollector) Collect(ch chan<- prometheus.Metric) {
	if v, ok := c.read(); ok {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(v))
	}
}

// readAnonRSS reads RssAnon from /proc/self/status. A kernel that does
// not report it (RssAnon 0, since no running process has none) counts as
// not reporting.
func readAnonRSS() (uint64, bool) {
	p, err := procfs.Self()
	if err != nil {
		return 0, false
	}
	st, err := p.NewStatus()
	if err != nil || st.RssAnon == 0 {
		return 0, false
	}
	return st.RssAnon, true
}
