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
	if c.workers != 2 || c.rounds != 3 || c.threads != 1 || len(c.systems) != 6 ||
		pathSpecs(c.paths) != "/api/health,/api/work?n=200,/api/items/{id},post:16384:/api/health,ws:/ws" || c.docs != "docs/PERFORMANCE.md" {
		t.Errorf("defaults = %+v", c)
	}
	// 5 systems × 4 HTTP paths, balancer-json on the first, and 4 systems ×
	// 1 WebSocket path, each 3 rounds of 5s after a 1s warm-up.
	if got, want := c.estimate(), (5*4+1+4)*16*time.Second; got != want || got > 7*time.Minute {
		t.Errorf("default rounds take %s, want %s, about 7 minutes at most", got, want)
	}
	for _, bad := range [][]string{{"-workers", "0"}, {"-duration", "1500ms"}, {"-systems", "caddy"},
		{"-paths", "api"}, {"-paths", "post:0:/x"}, {"-paths", "/x,/x"}, {"-connections", "0"},
		{"-paths", "ws:x"}, {"-load", "go", "-scale", "1,2", "-paths", "/a,ws:/ws"}} {
		if _, err := parseFlags(bad); err == nil {
			t.Errorf("parseFlags(%q) succeeded, want an error", bad)
		}
	}
	if c, _ := parseFlags([]string{"-docs", ""}); c.docs != "" {
		t.Errorf("-docs '' = %q, want empty", c.docs)
	}
	if c, err := parseFlags([]string{"-systems", "balancer,balancer-stream"}); err != nil || len(c.systems) != 2 {
		t.Errorf("-systems balancer,balancer-stream = %q, %v", c.systems, err)
	}
}

// pathSpecs joins the entries of paths as given, with commas.
func pathSpecs(paths []pathSpec) string {
	specs := make([]string, len(paths))
	for i, p := range paths {
		specs[i] = p.spec
	}
	return strings.Join(specs, ",")
}

// TestReportLabels checks the report names paths by their labels, lists
// balancer-stream after balancer with its proxy columns and the ratio to
// nginx, and explains it and the POST body in the Method.
func TestReportLabels(t *testing.T) {
	cfg, err := parseFlags([]string{"-systems", "nginx,balancer-stream,balancer", "-paths", "/api/health,post:16384:/api/health"})
	if err != nil {
		t.Fatal(err)
	}
	mk := func(rps float64) *cell {
		w := wrkResult{RPS: rps, Requests: int64(rps), Latency: map[int]time.Duration{50: time.Millisecond, 99: 3 * time.Millisecond}}
		return &cell{samples: []sample{{wrk: w, cpu: time.Duration(rps) * 10 * time.Microsecond}}, peakRSS: 12 << 20}
	}
	cells := func() map[string]*cell {
		return map[string]*cell{sysBalancer: mk(900), sysBalancerStream: mk(1200), sysNginx: mk(1000)}
	}
	res := results{"/api/health": cells(), "post:16384:/api/health": cells()}
	doc := renderReport(reportInput{cfg: cfg, res: res})
	ordered := []string{
		"## GET /api/health",
		"| balancer (2 workers) | 900 | 0.0% | 1.00 ms | 3.00 ms | 0 | 10.0 | 12.0 | 0.90× |",
		"| balancer-stream (2 workers) | 1200 | 0.0% | 1.00 ms | 3.00 ms | 0 | 10.0 | 12.0 | 1.20× |",
		"| nginx (2 workers) | 1000 |",
		"## POST 16 KiB /api/health",
		"| balancer (2 workers) | 900 |",
		"| balancer-stream (2 workers) | 1200 |",
	}
	last := -1
	for _, s := range ordered {
		i := strings.Index(doc[last+1:], s)
		if i < 0 {
			t.Fatalf("%q missing or out of order in\n%s", s, doc)
		}
		last += 1 + i
	}
	for _, s := range []string{"balancer-stream is the same balancer with `REQUEST_BUFFERING=false RESPONSE_BUFFER=off`",
		"A POST path sends that many bytes", "`client_body_buffer_size 64k`"} {
		if !strings.Contains(doc, s) {
			t.Errorf("report lacks %q:\n%s", s, doc)
		}
	}
}

// TestReportNotesOnlyWhenMeasured checks the Method mentions neither
// balancer-stream nor POST bodies when neither was measured.
func TestReportNotesOnlyWhenMeasured(t *testing.T) {
	cfg, err := parseFlags([]string{"-systems", "balancer,nginx", "-paths", "/api/health"})
	if err != nil {
		t.Fatal(err)
	}
	doc := renderReport(reportInput{cfg: cfg, res: results{}})
	if strings.Contains(doc, "balancer-stream") || strings.Contains(doc, "POST") || strings.Contains(doc, "WebSocket") {
		t.Errorf("report explains what it did not measure:\n%s", doc)
	}
}

// TestReportWebSocketRow checks a ws: path gets its own section, counted in
// messages, and the Method explains how it was measured.
func TestReportWebSocketRow(t *testing.T) {
	cfg, err := parseFlags([]string{"-systems", "balancer,nginx,haproxy", "-paths", "/api/health,ws:/ws"})
	if err != nil {
		t.Fatal(err)
	}
	w := wrkResult{RPS: 5000, Requests: 25000, Latency: map[int]time.Duration{50: time.Millisecond, 99: 2 * time.Millisecond}}
	c := &cell{samples: []sample{{wrk: w, cpu: 250 * time.Millisecond}}, peakRSS: 8 << 20}
	res := results{"ws:/ws": {sysBalancer: c, sysNginx: c}}
	doc := renderReport(reportInput{cfg: cfg, res: res})
	for _, s := range []string{"## WebSocket /ws: echo of 64 B messages",
		"| system | msg/s | spread | p50 | p99 | errors | proxy CPU µs/msg | proxy peak RSS MiB | vs nginx |",
		"| balancer (2 workers) | 5000 | 0.0% | 1.00 ms | 2.00 ms | 0 | 10.0 | 8.0 | 1.00× |",
		"A WebSocket path opens 32 WebSockets", "`Connection $connection_upgrade`"} {
		if !strings.Contains(doc, s) {
			t.Errorf("report lacks %q:\n%s", s, doc)
		}
	}
	if !strings.Contains(doc, "| system | req/s |") {
		t.Errorf("the HTTP path's table lost its req/s:\n%s", doc)
	}
}
