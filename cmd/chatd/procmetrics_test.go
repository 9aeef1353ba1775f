package main

import (
	"os"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// chat_process_anon_rss_bytes reads this process's RssAnon at scrape time,
// and is absent where the system does not report it.
func TestAnonRSSCollector(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc/self/status here")
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(newAnonRSSCollector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(mfs) != 1 || mfs[0].GetName() != "chat_process_anon_rss_bytes" || len(mfs[0].GetMetric()) != 1 {
		t.Fatalf("gathered %v, want one chat_process_anon_rss_bytes", mfs)
	}
	if v := mfs[0].GetMetric()[0].GetGauge().GetValue(); v < 1<<20 {
		t.Fatalf("anonymous RSS %v bytes, want this test process's (over 1 MiB)", v)
	}

	absent := newAnonRSSCollector()
	absent.read = func() (uint64, bool) { return 0, false }
	reg = prometheus.NewRegistry()
	reg.MustRegister(absent)
	if mfs, err = reg.Gather(); err != nil || len(mfs) != 0 {
		t.Fatalf("gathered %v, %v where RssAnon is not reported, want nothing", mfs, err)
	}
}
