package protocol

import (
	"encoding/json"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestReadRSS(t *testing.T) {
	t.Parallel()
	rss, err := ReadRSS(os.Getpid())
	if err != nil || rss < 1<<20 {
		t.Fatalf("ReadRSS(self) = %d, %v; want at least 1 MiB", rss, err)
	}
	if rss%uint64(os.Getpagesize()) != 0 {
		t.Fatalf("ReadRSS(self) = %d, not a whole number of pages", rss)
	}
	if _, err := ReadRSS(1 << 30); err == nil {
		t.Fatal("ReadRSS of a pid that cannot exist: no error")
	}
}

func TestReadMemory(t *testing.T) {
	t.Parallel()
	m := ReadMemory()
	if m.RSSBytes == 0 || m.HeapAllocBytes == 0 || m.HeapSysBytes < m.HeapAllocBytes || m.Goroutines < 1 {
		t.Fatalf("ReadMemory = %+v", m)
	}
	if m.ReportedAt.Location() != time.UTC || time.Since(m.ReportedAt) > time.Minute {
		t.Fatalf("ReportedAt %v, want now in UTC", m.ReportedAt)
	}
}

// The report's JSON names are the contract's; the runtime fields are left
// out for workers that do not report them, so /admin/workers can tell.
func TestMemoryReportJSON(t *testing.T) {
	t.Parallel()
	b, err := json.Marshal(MemoryReport{RSSBytes: 42, ReportedAt: time.Unix(0, 0).UTC()})
	if err != nil || string(b) != `{"rss_bytes":42,"reported_at":"1970-01-01T00:00:00Z"}` {
		t.Fatalf("RSS-only report = %s, %v", b, err)
	}
	runtime.GC() // gc_cycles is left out until the first cycle
	b, _ = json.Marshal(ReadMemory())
	for _, k := range []string{"rss_bytes", "heap_alloc_bytes", "heap_sys_bytes", "goroutines", "gc_cycles", "reported_at"} {
		if !strings.Contains(string(b), `"`+k+`":`) {
			t.Fatalf("Go worker report %s lacks %q", b, k)
		}
	}
	var back MemoryReport
	if err := json.Unmarshal(b, &back); err != nil || back.RSSBytes == 0 {
		t.Fatalf("report does not round-trip: %+v, %v", back, err)
	}
}

func TestWorkerProcs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ cpus, n, want int }{
		{2, 2, 1}, {2, 1, 2}, {2, 4, 1}, {8, 3, 2}, {16, 4, 4}, {4, 0, 4}, {4, -1, 4},
	} {
		if got := WorkerProcs(tc.cpus, tc.n); got != tc.want {
			t.Fatalf("WorkerProcs(%d, %d) = %d, want %d", tc.cpus, tc.n, got, tc.want)
		}
	}
	if WorkerProcs(runtime.NumCPU(), 1<<20) != 1 {
		t.Fatal("a worker gets less than one core")
	}
}

func TestLoopbackAddr(t *testing.T) {
	for in, want := range map[string]string{
		":8080": "127.0.0.1:8080", "0.0.0.0:80": "127.0.0.1:80", "[::]:3002": "[::1]:3002",
		"10.1.2.3:9": "10.1.2.3:9", "localhost:1": "localhost:1", "unix-ish": "unix-ish",
	} {
		if got := LoopbackAddr(in); got != want {
			t.Errorf("LoopbackAddr(%q) = %q, want %q", in, got, want)
		}
	}
}
