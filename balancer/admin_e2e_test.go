package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// script writes an executable shell script into a temp dir.
func script(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "worker.sh")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// Issue 3: /admin/workers carries every field of the contract; RSS for a
// worker program that does not use the kit; heap and goroutines for the
// reference worker; totals equal the sums.
func TestAdminWorkersReport(t *testing.T) {
	t.Parallel()
	self, _ := os.Executable()
	cmd := script(t, fmt.Sprintf(`if [ "$WORKER_ID" = 2 ]; then E2E_HELPER=record RECORD_FILE=/dev/null exec %s; fi; exec %s`, self, bins.worker))
	b := startBalancer(t, 2, "WORKER_CMD="+cmd, "MEMORY_REPORT_INTERVAL=100ms")
	waitFor(t, 5*time.Second, "memory reports", func() bool {
		r := b.workers()
		return r.Workers[0].Memory.Goroutines != nil && r.Workers[1].Memory.RSSBytes > 0
	})
	var raw map[string]any
	b.adminReq("GET", "/admin/workers", "", &raw)
	for _, k := range []string{"strategy", "workers", "totals", "balancer"} {
		if _, ok := raw[k]; !ok {
			t.Fatalf("report lacks %q: %v", k, raw)
		}
	}
	w1 := raw["workers"].([]any)[0].(map[string]any)
	for _, k := range []string{"id", "kind", "address", "pid", "state", "inflight", "requests", "failures", "restarts", "started_at", "memory", "over_threshold"} {
		if _, ok := w1[k]; !ok {
			t.Fatalf("worker entry lacks %q: %v", k, w1)
		}
	}
	mem1 := w1["memory"].(map[string]any)
	for _, k := range []string{"rss_bytes", "heap_alloc_bytes", "heap_sys_bytes", "goroutines", "gc_cycles", "reported_at"} {
		if _, ok := mem1[k]; !ok {
			t.Fatalf("reference worker memory lacks %q: %v", k, mem1)
		}
	}
	for _, k := range []string{"workers", "healthy", "rss_bytes", "heap_alloc_bytes", "requests"} {
		if _, ok := raw["totals"].(map[string]any)[k]; !ok {
			t.Fatalf("totals lack %q", k)
		}
	}
	for range 10 {
		b.get("/api/health")
	}
	r := b.workers()
	w2 := r.Workers[1]
	if w2.Memory.RSSBytes == 0 || w2.Memory.HeapAllocBytes != nil || w2.Memory.Goroutines != nil {
		t.Fatalf("non-kit worker memory = %+v, want RSS only", w2.Memory)
	}
	if g := r.Workers[0].Memory.Goroutines; g == nil || *g == 0 || *r.Workers[0].Memory.HeapAllocBytes == 0 {
		t.Fatalf("reference worker memory = %+v, want heap and goroutines", r.Workers[0].Memory)
	}
	var rss, heap, reqs uint64
	for _, w := range r.Workers {
		rss += w.Memory.RSSBytes
		reqs += w.Requests
		if w.Memory.HeapAllocBytes != nil {
			heap += *w.Memory.HeapAllocBytes
		}
	}
	tt := r.Totals
	if tt.Workers != 2 || tt.Healthy != 2 || tt.RSSBytes != rss || tt.HeapAllocBytes != heap || tt.Requests != reqs || reqs < 10 {
		t.Fatalf("totals %+v, want sums rss=%d heap=%d requests=%d", tt, rss, heap, reqs)
	}
	if r.Balancer.PID != b.cmd.Process.Pid || r.Balancer.RSSBytes == 0 || r.Balancer.UptimeSeconds <= 0 {
		t.Fatalf("balancer entry %+v", r.Balancer)
	}
	// The report channel is not reachable through the proxy.
	if code, body, _ := b.get("/memory"); code == 200 && strings.Contains(string(body), "heap_alloc_bytes") {
		t.Fatalf("memory report reachable through the proxy: %s", body)
	}
}

// Issue 3: no token, a wrong token, and a token in the query string: 401.
func TestAdminTokenRequired(t *testing.T) {
	t.Parallel()
	b := launch(t, "ADMIN_TOKEN=s3cret")
	waitFor(t, 10*time.Second, "the admin listener", func() bool { return b.tokenGet("/admin/health", "s3cret") == 200 })
	for _, path := range []string{"/admin/workers", "/admin/health", "/metrics", "/debug/pprof/"} {
		for _, tc := range []struct{ path, token string }{{path, ""}, {path, "wrong"}, {path + "?token=s3cret", ""}, {path + "?access_token=s3cret", "Bearer"}} {
			if code := b.tokenGet(tc.path, tc.token); code != 401 {
				t.Fatalf("GET %s with token %q: %d, want 401", tc.path, tc.token, code)
			}
		}
		if code := b.tokenGet(path, "s3cret"); code != 200 {
			t.Fatalf("GET %s with the token: %d", path, code)
		}
	}
	// The client listener proxies /admin paths to the workers like any path.
	if code, body, _ := b.get("/admin/workers"); code != 404 || strings.Contains(string(body), "strategy") {
		t.Fatalf("client listener /admin/workers: %d %s", code, body)
	}
}

func (b *bal) tokenGet(path, token string) int {
	req, _ := http.NewRequest("GET", "http://"+b.admin+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// Issue 3: every bad /admin/scale input gets a 4xx JSON error and leaves
// the worker count unchanged.
func TestScaleRefusesBadInput(t *testing.T) {
	t.Parallel()
	b := startBalancer(t, 2)
	big := `{"workers": 3, "pad": "` + strings.Repeat("x", 1<<20) + `"}`
	for _, tc := range []struct{ method, body string }{
		{"POST", `{"workers":`}, {"POST", `"3"`}, {"POST", `{"workers":"3"}`},
		{"POST", `{"workers":-1}`}, {"POST", `{"workers":0}`}, {"POST", `{"workers":1e9}`},
		{"POST", `{"workers":2.5}`}, {"POST", ``}, {"POST", big}, {"GET", ``},
		{"POST", `{"workers":3}{"workers":4}`}, {"POST", `{"workers":65}`}, {"POST", `{"count":3}`},
		{"POST", `[3]`}, {"POST", `{"workers":null}`},
	} {
		var e map[string]any
		code := b.adminReq(tc.method, "/admin/scale", tc.body, &e)
		name := tc.body
		if len(name) > 40 {
			name = name[:40]
		}
		if code < 400 || code > 499 || e["error"] == nil {
			t.Fatalf("%s %q: %d %v, want a 4xx JSON error", tc.method, name, code, e)
		}
		if r := b.workers(); r.Totals.Workers != 2 || r.Totals.Healthy != 2 {
			t.Fatalf("%s %q changed the workers: %+v", tc.method, name, r.Totals)
		}
	}
}

// Issue 3: scale 2 -> 6 -> 1 -> 2, then a rolling reload (and SIGHUP),
// while 4 clients send GETs: zero failed requests.
func TestScaleAndReloadUnderLoad(t *testing.T) {
	t.Parallel()
	b := startBalancer(t, 2, "DRAIN_TIMEOUT=5s")
	l := startLoad(b, 4, "/api/health")
	for _, n := range []int{6, 1, 2} {
		start := time.Now()
		var res map[string]int
		if code := b.adminReq("POST", "/admin/scale", fmt.Sprintf(`{"workers":%d}`, n), &res); code != 200 {
			t.Fatalf("scale to %d: %d %v", n, code, res)
		}
		b.waitHealthy(n, 20*time.Second)
		t.Logf("scale to %d: answered and reached in %s", n, time.Since(start).Round(time.Millisecond))
	}
	before := pids(b)
	start := time.Now()
	if code := b.adminReq("POST", "/admin/reload", "", nil); code != 200 {
		t.Fatalf("reload: %d", code)
	}
	after := pids(b)
	t.Logf("rolling reload of 2 workers: %s", time.Since(start).Round(time.Millisecond))
	for id, pid := range before {
		if after[id] == pid {
			t.Fatalf("worker %d kept pid %d through the reload", id, pid)
		}
	}
	b.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, 20*time.Second, "SIGHUP reload to replace every worker", func() bool {
		now := pids(b)
		if len(now) != 2 {
			return false
		}
		for id, pid := range now {
			if after[id] == pid {
				return false
			}
		}
		return true
	})
	b.waitHealthy(2, 10*time.Second)
	time.Sleep(200 * time.Millisecond)
	l.finish(t)
}

func pids(b *bal) map[int]int {
	m := map[int]int{}
	for _, w := range b.workers().Workers {
		if w.State == "healthy" {
			m[w.ID] = w.PID
		}
	}
	return m
}

// Issue 3: a worker over MAX_REQUESTS is recycled replacement-first with
// zero failed requests, and the cause shows.
func TestRecycleAfterMaxRequests(t *testing.T) {
	t.Parallel()
	b := startBalancer(t, 2, "MAX_REQUESTS=200")
	l := startLoad(b, 4, "/api/health")
	waitFor(t, 20*time.Second, "a max_requests recycle", func() bool {
		for _, w := range b.workers().Workers {
			if w.RestartCause == "max_requests" && w.State == "healthy" {
				return true
			}
		}
		return false
	})
	l.finish(t)
	if !strings.Contains(metricsText(t, b), `balancer_worker_restarts_total{cause="max_requests"}`) {
		t.Fatal("max_requests restarts not in /metrics")
	}
}

// Issue 3: a worker that grows past MAX_MEMORY_RESTART_MB is replaced with
// zero failed requests, and the cause shows in /admin/workers and /metrics.
func TestRecycleAboveMemoryLimit(t *testing.T) {
	t.Parallel()
	self, _ := os.Executable()
	b := startBalancer(t, 2, "WORKER_CMD="+self, "E2E_HELPER=record", "RECORD_FILE=/dev/null",
		"GROW_KB=512", "MAX_MEMORY_RESTART_MB=150", "MEMORY_REPORT_INTERVAL=100ms",
		"MEMORY_THRESHOLD_MB=100")
	l := startLoad(b, 4, "/grow")
	var flagged bool
	waitFor(t, 30*time.Second, "a memory recycle", func() bool {
		for _, w := range b.workers().Workers {
			flagged = flagged || w.OverThreshold
			if w.RestartCause == "memory" && w.State == "healthy" {
				return true
			}
		}
		return false
	})
	l.finish(t)
	if !flagged {
		t.Fatal("no worker was flagged over_threshold on its way up")
	}
	m := metricsText(t, b)
	if strings.Contains(m, `balancer_worker_restarts_total{cause="memory"} 0`) {
		t.Fatalf("memory restarts not counted in /metrics")
	}
	if n := strings.Count(b.out.String(), "worker memory above threshold"); n == 0 {
		t.Fatal("no threshold warning logged")
	}
}

func metricsText(t *testing.T, b *bal) string {
	t.Helper()
	resp, err := client.Get("http://" + b.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sb strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return sb.String()
}

// Issue 3: a reload whose new WORKER_CMD never gets healthy stops and
// leaves the old workers serving.
func TestReloadWithBrokenCommandKeepsOldWorkers(t *testing.T) {
	t.Parallel()
	flag := filepath.Join(t.TempDir(), "broken")
	cmd := script(t, fmt.Sprintf("if [ -f %s ]; then exec sleep 30; fi; exec %s", flag, bins.worker))
	b := startBalancer(t, 2, "WORKER_CMD="+cmd, "WORKER_START_TIMEOUT=1s")
	before := pids(b)
	if err := os.WriteFile(flag, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	l := startLoad(b, 2, "/api/health")
	var e map[string]any
	code := b.adminReq("POST", "/admin/reload", "", &e)
	if code == 200 || e["error"] == nil {
		t.Fatalf("reload with a broken command: %d %v, want an error", code, e)
	}
	l.finish(t)
	r := b.waitHealthy(2, 5*time.Second)
	for _, w := range r.Workers {
		if before[w.ID] != w.PID {
			t.Fatalf("worker %d changed pid %d -> %d after a failed reload", w.ID, before[w.ID], w.PID)
		}
	}
	raw, _ := json.Marshal(e)
	t.Logf("failed reload answered %d %s", code, raw)
}
