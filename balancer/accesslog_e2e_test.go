package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startTestUpstream serves as a remote upstream on loopback: /healthz
// answers ok, /slow takes a second, /reset (when reset is set) closes the
// connection without an answer, anything else answers with name.
func startTestUpstream(t *testing.T, name string, reset bool) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/slow":
			time.Sleep(time.Second)
		case r.URL.Path == "/reset" && reset:
			c, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				c.Close()
			}
			return
		}
		fmt.Fprintf(w, "%s %s\n", name, r.URL.Path)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// accessLines returns the lines of an access log file.
func accessLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	s := strings.TrimSuffix(string(b), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// waitLines waits until count() reaches n, then a while longer, and fails
// unless it is exactly n.
func waitLines(t *testing.T, n int, count func() int) {
	t.Helper()
	waitFor(t, 10*time.Second, fmt.Sprintf("%d access log lines", n), func() bool { return count() >= n })
	time.Sleep(400 * time.Millisecond) // four sweeps: any extra line is out by now
	if got := count(); got != n {
		t.Fatalf("%d access log lines for %d requests", got, n)
	}
}

// accessEntry is one line of ACCESS_LOG=json.
type accessEntry struct {
	Time      string   `json:"time"`
	RequestID string   `json:"request_id"`
	Client    string   `json:"client"`
	Method    string   `json:"method"`
	Path      string   `json:"path"`
	Status    int      `json:"status"`
	BytesIn   int64    `json:"bytes_in"`
	BytesOut  int64    `json:"bytes_out"`
	Upstream  int      `json:"upstream"`
	Attempts  int      `json:"attempts"`
	Duration  *float64 `json:"duration_ms"`
}

// Issue 14: N requests through the real balancer give exactly N lines of
// ACCESS_LOG=json in ACCESS_LOG_FILE, each with every field: answered,
// retried on another upstream after a reset (attempts 2), failed (502 for
// a POST, which is never sent twice; 504 after UPSTREAM_TIMEOUT) and
// refused (400) ones alike. SIGUSR1 rotates the file.
func TestAccessLogEveryRequest(t *testing.T) {
	t.Parallel()
	a := startTestUpstream(t, "a", true)
	bUp := startTestUpstream(t, "b", false)
	path := filepath.Join(t.TempDir(), "logs", "access.log")
	b := launch(t, "MAX_WORKERS=0", "UPSTREAMS="+a+","+bUp, "UNHEALTHY_THRESHOLD=1000",
		"UPSTREAM_TIMEOUT=300ms", "ACCESS_LOG=json", "ACCESS_LOG_FILE="+path)
	waitFor(t, 10*time.Second, "both upstreams healthy", func() bool {
		return b.tokenGet("/admin/health", "") == 200 && b.workers().Totals.Healthy == 2
	})

	sent, statuses := 0, map[int]int{}
	do := func(method, target, body string) {
		req, _ := http.NewRequest(method, "http://"+b.addr+target, strings.NewReader(body))
		resp, err := client.Do(req)
		sent++
		if err != nil {
			t.Fatalf("%s %s: %v", method, target, err)
		}
		resp.Body.Close()
		statuses[resp.StatusCode]++
	}
	for i := range 10 {
		do("GET", fmt.Sprintf("/ok?q=%d&long=%s", i, strings.Repeat("x", 300)), "")
	}
	for range 6 {
		do("GET", "/reset", "") // on a: reset, retried on b
	}
	for i := 0; i < 20 && statuses[502] == 0; i++ {
		do("POST", "/reset", "body") // on a: 502, never sent twice
	}
	for range 2 {
		do("GET", "/slow", "") // 504
	}
	if line := rawRequest(t, b.addr, "GET / HTTP/1.1\r\n\r\n"); !strings.Contains(line, " 400 ") {
		t.Fatalf("a request without Host: %q, want 400", line)
	}
	sent++
	if statuses[502] == 0 || statuses[504] != 2 {
		t.Fatalf("answers %v: want a 502 and two 504s", statuses)
	}
	waitLines(t, sent, func() int { return len(accessLines(t, path)) })

	var retried, failed, timedOut, refused int
	for _, line := range accessLines(t, path) {
		var e accessEntry
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("not JSON: %q: %v", line, err)
		}
		if _, err := time.Parse(time.RFC3339Nano, e.Time); err != nil || e.Client != "127.0.0.1" || e.Method == "" ||
			e.Path == "" || e.Status == 0 || e.BytesIn == 0 || e.Duration == nil {
			t.Fatalf("line lacks a field: %s", line)
		}
		switch {
		case e.Status == 400:
			refused++
			continue
		case e.Attempts == 2 && e.Status == 200 && e.Path == "/reset":
			retried++
		case e.Status == 502 && e.Method == "POST":
			failed++
		case e.Status == 504:
			timedOut++
			if *e.Duration < 250 {
				t.Fatalf("504 after %.1f ms, want UPSTREAM_TIMEOUT's 300", *e.Duration)
			}
		}
		if e.RequestID == "" || (e.Upstream != 1001 && e.Upstream != 1002) || e.Attempts < 1 || e.BytesOut == 0 {
			t.Fatalf("proxied request's line: %s", line)
		}
		if strings.HasPrefix(e.Path, "/ok?q=") && len(e.Path) >= 300 {
			t.Fatalf("the path was not cut to its bound: %d bytes", len(e.Path))
		}
	}
	if retried == 0 || failed == 0 || timedOut != 2 || refused != 1 {
		t.Fatalf("retried %d, failed %d, timed out %d, refused %d; want some, some, 2, 1", retried, failed, timedOut, refused)
	}

	// SIGUSR1 rotates ACCESS_LOG_FILE; the next line goes to a new file.
	b.cmd.Process.Signal(syscall.SIGUSR1)
	waitFor(t, 10*time.Second, "a rotated access log", func() bool {
		rotated, _ := filepath.Glob(filepath.Join(filepath.Dir(path), "access-*.log"))
		return len(rotated) == 1 && len(accessLines(t, path)) == 0
	})
	do("GET", "/after-rotation", "")
	waitLines(t, 1, func() int { return len(accessLines(t, path)) })
	if !strings.Contains(b.out.String(), "setting=ACCESS_LOG_FILE") {
		t.Fatalf("no rotation line for ACCESS_LOG_FILE:\n%s", b.out.String())
	}
}

var textLine = regexp.MustCompile(`(?m)^\S+Z 127\.0\.0\.1 \S+ "GET /api/health\?n=\d+" 200 in=\d+ out=\d+ upstream=1 attempts=1 ms=\d+\.\d{3}$`)

// Issue 14: the access log is on by default, on stdout: text, or JSON when
// LOG_FORMAT=json; ACCESS_LOG=off has none.
func TestAccessLogDefaults(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		env  []string
		re   *regexp.Regexp
		want int
	}{
		{"text", nil, textLine, 5},
		{"json", []string{"LOG_FORMAT=json"}, regexp.MustCompile(`(?m)^\{"time":"[^"]+","request_id":"[^"]+","client":"127.0.0.1","method":"GET","path":"/api/health\?n=\d+","status":200,.*"duration_ms":\d+\.\d{3}\}$`), 5},
		{"off", []string{"ACCESS_LOG=off"}, regexp.MustCompile(`(?m)/api/health\?n=`), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := startBalancer(t, 1, append([]string{"MAX_WORKERS=1"}, tc.env...)...) // stdout and stderr both in b.out
			for i := range 5 {
				if code, _, err := b.get(fmt.Sprintf("/api/health?n=%d", i)); err != nil || code != 200 {
					t.Fatalf("GET: %d %v", code, err)
				}
			}
			waitLines(t, tc.want, func() int { return len(tc.re.FindAllString(b.out.String(), -1)) })
		})
	}
}

// Issue 14: a bad ACCESS_LOG, or an ACCESS_LOG_FILE that cannot be
// written, stops the start with one line naming the variable.
func TestAccessLogSettingsRefused(t *testing.T) {
	t.Parallel()
	notDir := filepath.Join(t.TempDir(), "file")
	os.WriteFile(notDir, nil, 0o600)
	for _, tc := range []struct{ env, name string }{
		{"ACCESS_LOG=verbose", "ACCESS_LOG"},
		{"ACCESS_LOG_FILE=" + filepath.Join(notDir, "a.log"), "ACCESS_LOG_FILE"},
	} {
		t.Run(tc.env, func(t *testing.T) {
			t.Parallel()
			b := launch(t, tc.env)
			code := b.waitExit(10 * time.Second)
			out := strings.TrimSpace(b.out.String())
			if code != 2 || strings.Count(out, "\n") != 0 || !strings.Contains(out, tc.name) {
				t.Fatalf("exit %d, output %q: want 2 and one line naming %s", code, out, tc.name)
			}
		})
	}
}
