package main

import (
	"strings"
	"testing"
	"time"
)

// TestMedian covers odd, even and empty inputs.
func TestMedian(t *testing.T) {
	if got := median([]float64{3, 1, 2}); got != 2 {
		t.Errorf("median odd = %v, want 2", got)
	}
	if got := median([]time.Duration{4, 1, 3, 2}); got != 2 {
		t.Errorf("median even = %v, want 2 (mean of 2 and 3, integer)", got)
	}
	if got := median([]float64(nil)); got != 0 {
		t.Errorf("median empty = %v, want 0", got)
	}
}

// TestCellSummary checks medians, sums and spread over rounds.
func TestCellSummary(t *testing.T) {
	mk := func(rps float64, p99 time.Duration, reqs, errs int64, cpu time.Duration) sample {
		return sample{wrk: wrkResult{RPS: rps, Requests: reqs, BadStatus: errs,
			Latency: map[int]time.Duration{50: p99 / 2, 99: p99}}, cpu: cpu}
	}
	c := &cell{samples: []sample{
		mk(100, 4*time.Millisecond, 500, 1, 10*time.Millisecond),
		mk(80, 2*time.Millisecond, 400, 0, 10*time.Millisecond),
		mk(120, 6*time.Millisecond, 600, 2, 10*time.Millisecond),
	}}
	s := c.summary()
	if s.rps != 100 || s.p99 != 4*time.Millisecond || s.p50 != 2*time.Millisecond {
		t.Errorf("medians = %v, %s, %s", s.rps, s.p50, s.p99)
	}
	if s.errors != 3 || s.requests != 1500 || s.cpu != 30*time.Millisecond {
		t.Errorf("sums = %d errors, %d requests, %s", s.errors, s.requests, s.cpu)
	}
	if s.spread != 0.4 {
		t.Errorf("spread = %v, want 0.4", s.spread)
	}
	if got := proxyCPU(sysNginx, s); got != "20.0" {
		t.Errorf("proxyCPU = %q, want 20.0 µs", got)
	}
	if got := proxyCPU(sysDirect, s); got != "-" {
		t.Errorf("proxyCPU(direct) = %q, want -", got)
	}
}

// TestCommandLine quotes what a shell would split.
func TestCommandLine(t *testing.T) {
	got := commandLine([]string{"-workers", "4", "-paths", "/api/work?n=200", "-docs", ""})
	if want := "go run ./bench -workers 4 -paths '/api/work?n=200' -docs ''"; got != want {
		t.Errorf("commandLine = %q, want %q", got, want)
	}
}

// TestParseFlags checks the defaults suit a 2-core machine and bad values
// are refused.
func TestParseFlags(t *testing.T) {
	c, err := parseFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.workers != 2 || c.rounds != 3 || c.threads != 1 || len(c.systems) != 4 ||
		strings.Join(c.paths, ",") != "/api/health,/api/work?n=200" || c.docs != "docs/PERFORMANCE.md" {
		t.Errorf("defaults = %+v", c)
	}
	if c.estimate() > 3*time.Minute {
		t.Errorf("default rounds take %s, want well under 4 minutes", c.estimate())
	}
	for _, bad := range [][]string{{"-workers", "0"}, {"-duration", "1500ms"}, {"-systems", "caddy"},
		{"-paths", "api"}, {"-connections", "0"}} {
		if _, err := parseFlags(bad); err == nil {
			t.Errorf("parseFlags(%q) succeeded, want an error", bad)
		}
	}
	if c, _ := parseFlags([]string{"-docs", ""}); c.docs != "" {
		t.Errorf("-docs '' = %q, want empty", c.docs)
	}
}
