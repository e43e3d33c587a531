package main

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// TestParseScale checks worker lists are parsed and bad items refused.
func TestParseScale(t *testing.T) {
	for in, want := range map[string][]int{"1,2,4,8,16": {1, 2, 4, 8, 16}, " 3 , 1 ": {3, 1}, "": nil, "  ": nil} {
		got, err := parseScale(in)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("parseScale(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"0", "x", "1,,2", "1,", ",1", ",", "-1", "2,2", "1.5", "4 8"} {
		if got, err := parseScale(bad); err == nil {
			t.Errorf("parseScale(%q) = %v, want an error", bad, got)
		}
	}
}

// TestScaleFlags checks -scale and -load: scaling mode runs only the
// balancer and direct, skips the failure checks, needs no external program,
// and bad combinations are refused.
func TestScaleFlags(t *testing.T) {
	c, err := parseFlags([]string{"-load", "go", "-scale", "1,2,4", "-paths", "/a,/b", "-rounds", "2", "-warmup", "0s"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.systems, ",") != "balancer,direct" || c.failures || !slices.Equal(c.scale, []int{1, 2, 4}) {
		t.Errorf("scaling config = %+v", c)
	}
	if need := neededTools(c); len(need) != 0 {
		t.Errorf("-load go -scale needs %v, want nothing", need)
	}
	if got, want := c.estimate(), 4*2*2*5*time.Second; got != want {
		t.Errorf("estimate = %s, want %s (4 systems × 2 paths × 2 rounds × 5s)", got, want)
	}
	if c, err := parseFlags([]string{"-load", "go", "-scale", "1,2"}); err != nil || slices.ContainsFunc(c.paths, func(p pathSpec) bool { return p.ws }) {
		t.Errorf("-scale with the default paths: %v, paths %+v; want the HTTP paths alone", err, c.paths)
	}
	if c, _ := parseFlags(nil); c.load != loadWrk || c.scale != nil || !slices.Contains(neededTools(c), "wrk") {
		t.Errorf("default: load %q, scale %v, tools %v; want wrk, off, wrk needed", c.load, c.scale, neededTools(c))
	}
	for _, bad := range [][]string{{"-scale", "0"}, {"-scale", "1,x"}, {"-load", "ab"},
		{"-load", "go", "-wrk-cpu", "1"}} {
		if _, err := parseFlags(bad); err == nil {
			t.Errorf("parseFlags(%q) succeeded, want an error", bad)
		}
	}
}

// TestScaleReport checks the scaling table: a row per worker count in
// order, then direct, with the ratio to direct and the balancer's CPU.
func TestScaleReport(t *testing.T) {
	cfg, err := parseFlags([]string{"-load", "go", "-scale", "2,1", "-paths", "/api/health", "-threads", "3"})
	if err != nil {
		t.Fatal(err)
	}
	mk := func(rps float64, cpu time.Duration) *cell {
		w := wrkResult{RPS: rps, Requests: int64(rps), Latency: map[int]time.Duration{50: time.Millisecond, 99: 3 * time.Millisecond}}
		return &cell{samples: []sample{{wrk: w, cpu: cpu}}}
	}
	res := results{"/api/health": {scaleName(1): mk(1000, 20*time.Millisecond), scaleName(2): mk(1500, 15*time.Millisecond),
		sysDirect: mk(2000, 0)}}
	doc := renderScaleReport(reportInput{cfg: cfg, res: res})
	rows := []string{
		"| balancer, 2 | 1500 | 0.0% | 1.00 ms | 3.00 ms | 0 | 10.0 | 0.75× |",
		"| balancer, 1 | 1000 | 0.0% | 1.00 ms | 3.00 ms | 0 | 20.0 | 0.50× |",
		"| 2000 | 0.0% | 1.00 ms | 3.00 ms | 0 | - | 1.00× |",
		"built-in Go load generator", "bench GOMAXPROCS 3", "## GET /api/health",
	}
	last := -1
	for _, r := range rows[:3] {
		i := strings.Index(doc, r)
		if i < 0 || i < last {
			t.Errorf("row %q missing or out of order in\n%s", r, doc)
		}
		last = i
	}
	for _, s := range rows[3:] {
		if !strings.Contains(doc, s) {
			t.Errorf("report lacks %q:\n%s", s, doc)
		}
	}
}
