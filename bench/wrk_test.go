package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// readTestdata returns a captured file from testdata/.
func readTestdata(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestParseWrk checks the parser against real `wrk --latency` reports.
func TestParseWrk(t *testing.T) {
	tests := []struct {
		file      string
		requests  int64
		elapsed   time.Duration
		rps       float64
		p50, p99  time.Duration
		sockErrs  int64
		badStatus int64
	}{
		{"wrk_health.txt", 76623, 3010 * time.Millisecond, 25495.28, 960 * time.Microsecond, 6490 * time.Microsecond, 0, 0},
		{"wrk_work.txt", 54245, 3010 * time.Millisecond, 18041.95, 1540 * time.Microsecond, 7830 * time.Microsecond, 0, 0},
		{"wrk_non2xx.txt", 35201, 1100 * time.Millisecond, 31981.49, 192 * time.Microsecond, 5050 * time.Microsecond, 0, 35201},
		{"wrk_sockerr.txt", 30662, 2100 * time.Millisecond, 14602.42, 174 * time.Microsecond, 4330 * time.Microsecond, 8 + 36967, 0},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			r, err := parseWrk(readTestdata(t, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if r.Requests != tc.requests || r.Elapsed != tc.elapsed || r.RPS != tc.rps {
				t.Errorf("requests, elapsed, rps = %d, %s, %v; want %d, %s, %v",
					r.Requests, r.Elapsed, r.RPS, tc.requests, tc.elapsed, tc.rps)
			}
			if r.Latency[50] != tc.p50 || r.Latency[99] != tc.p99 {
				t.Errorf("p50, p99 = %s, %s; want %s, %s", r.Latency[50], r.Latency[99], tc.p50, tc.p99)
			}
			if r.SockErrs != tc.sockErrs || r.BadStatus != tc.badStatus || r.Errors() != tc.sockErrs+tc.badStatus {
				t.Errorf("socket errors, bad status = %d, %d; want %d, %d", r.SockErrs, r.BadStatus, tc.sockErrs, tc.badStatus)
			}
			if len(r.Latency) != 4 {
				t.Errorf("got %d percentiles, want 50, 75, 90, 99: %v", len(r.Latency), r.Latency)
			}
		})
	}
}

// TestParseWrkRejects checks that truncated or foreign output is an error,
// not a zero result.
func TestParseWrkRejects(t *testing.T) {
	full := readTestdata(t, "wrk_health.txt")
	cases := map[string]string{
		"empty":          "",
		"refused":        "unable to connect to 127.0.0.1:18081 Connection refused\n",
		"no --latency":   cutLines(full, "Latency Distribution", "50%", "75%", "90%", "99%"),
		"no rps":         cutLines(full, "Requests/sec:"),
		"no count":       cutLines(full, "requests in"),
		"bad percentile": strings.Replace(full, "99%    6.49ms", "99%    6.49xs", 1),
		"bad socket":     strings.Replace(full, "Requests/sec:", "  Socket errors: connect x, read 0\nRequests/sec:", 1),
	}
	for name, out := range cases {
		if _, err := parseWrk(out); err == nil {
			t.Errorf("%s: parseWrk succeeded, want an error", name)
		}
	}
}

// cutLines drops the lines containing any of subs.
func cutLines(s string, subs ...string) string {
	var keep []string
next:
	for _, line := range strings.Split(s, "\n") {
		for _, sub := range subs {
			if strings.Contains(line, sub) {
				continue next
			}
		}
		keep = append(keep, line)
	}
	return strings.Join(keep, "\n")
}

// TestParseWrkDuration covers every unit wrk prints.
func TestParseWrkDuration(t *testing.T) {
	tests := map[string]time.Duration{
		"283.00us": 283 * time.Microsecond,
		"0.96ms":   960 * time.Microsecond,
		"3.01s":    3010 * time.Millisecond,
		"1.50m":    90 * time.Second,
		"2.00h":    2 * time.Hour,
	}
	for in, want := range tests {
		got, err := parseWrkDuration(in)
		if err != nil || got != want {
			t.Errorf("parseWrkDuration(%q) = %s, %v; want %s", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "12", "1.0xs", "ms"} {
		if _, err := parseWrkDuration(bad); err == nil {
			t.Errorf("parseWrkDuration(%q) succeeded, want an error", bad)
		}
	}
}

// TestWrkArgs checks the command line, pinned and not.
func TestWrkArgs(t *testing.T) {
	o := wrkOptions{Path: "/usr/bin/wrk", Threads: 1, Connections: 32, Duration: 5 * time.Second}
	got := strings.Join(wrkArgs(o, "http://127.0.0.1:1/x"), " ")
	if want := "/usr/bin/wrk -t 1 -c 32 -d 5s --latency http://127.0.0.1:1/x"; got != want {
		t.Errorf("wrkArgs = %q, want %q", got, want)
	}
	o.CPU = "1"
	if got := wrkArgs(o, "u"); got[0] != "taskset" || got[2] != "1" || got[3] != "/usr/bin/wrk" {
		t.Errorf("pinned wrkArgs = %q", got)
	}
	o.CPU, o.Body, o.Script = "", 16384, "/tmp/d/wrk-post-16384.lua"
	got = strings.Join(wrkArgs(o, "http://127.0.0.1:1/x"), " ")
	if want := "/usr/bin/wrk -t 1 -c 32 -d 5s -s /tmp/d/wrk-post-16384.lua --latency http://127.0.0.1:1/x"; got != want {
		t.Errorf("POST wrkArgs = %q, want %q", got, want)
	}
}

// TestRunWrkNeedsScript checks wrk is not run to POST without the script
// that sends the body: it would send GETs.
func TestRunWrkNeedsScript(t *testing.T) {
	o := wrkOptions{Path: "/nonexistent/wrk", Threads: 1, Connections: 1, Duration: time.Second, Body: 10}
	if _, err := runWrk(context.Background(), o, "http://127.0.0.1:1/"); !errors.Is(err, errNoScript) {
		t.Errorf("runWrk without a script = %v, want %v", err, errNoScript)
	}
}

// TestWrkPost runs wrk with a generated script against a server that
// answers 400 to anything but the expected POST. make test installs wrk
// (test-deps); without it the test fails rather than prove nothing.
func TestWrkPost(t *testing.T) {
	wrk, err := lookTool("wrk")
	if err != nil {
		t.Fatalf("wrk is not installed (make test installs Debian's wrk when run as root): %v", err)
	}
	url, _ := serveLocal(t, postChecker(16384).serve)
	base := wrkOptions{Engine: loadWrk, Path: wrk, Threads: 1, Connections: 2, Duration: time.Second}
	p, _ := parsePathSpec("post:16384:/api/health")
	o, err := pathOptions(base, p, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r, err := runLoad(context.Background(), o, url+p.path)
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests == 0 || r.Errors() != 0 {
		t.Errorf("wrk POST: %d requests, %d errors; want some and none", r.Requests, r.Errors())
	}
}
