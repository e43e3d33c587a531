package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Issue 3: WORKER_MEMORY_LIMIT_MB reaches workers as GOMEMLIMIT, each Go
// worker gets its share of the cores as GOMAXPROCS, and worker output is
// relayed through the balancer's log, tagged, at the line's own level.
func TestWorkerEnvironmentAndLogRelay(t *testing.T) {
	t.Parallel()
	record := filepath.Join(t.TempDir(), "record")
	self := selfPath(t)
	b := startBalancer(t, 2, "WORKER_CMD="+self, "E2E_HELPER=record", "RECORD_FILE="+record,
		"WORKER_MEMORY_LIMIT_MB=64", "LOG_FORMAT=json")
	waitFor(t, 5*time.Second, "both workers' output", func() bool {
		return strings.Count(b.out.String(), "json line on stderr") == 2
	})
	for _, line := range readLines(t, record) {
		if strings.HasPrefix(line, "env ") && !strings.Contains(line, "GOMEMLIMIT=64MiB GOMAXPROCS=") {
			t.Fatalf("worker environment: %q", line)
		}
	}
	out := b.out.String()
	for _, want := range []string{`"@level":"warn","@message":"json line on stderr"`, `"k":"v"`, `"@message":"plain line on stdout"`, `"worker_id":1`} {
		if !strings.Contains(out, want) {
			t.Fatalf("relayed log lacks %s:\n%s", want, out)
		}
	}
}

// Contract: with no healthy upstream, clients get 503 with a JSON body and
// Retry-After, and /admin/health answers 503.
func TestNoHealthyWorkerAnswers503(t *testing.T) {
	t.Parallel()
	cmd := script(t, "exec sleep 30")
	b := launch(t, "WORKER_CMD="+cmd, "MAX_WORKERS=1", "WORKER_START_TIMEOUT=1s")
	waitFor(t, 10*time.Second, "the admin listener", func() bool { return b.tokenGet("/admin/health", "") == 503 })
	waitFor(t, 10*time.Second, "the client listener", func() bool {
		resp, err := client.Get("http://" + b.addr + "/api/health")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("no healthy worker: %d %v", resp.StatusCode, resp.Header)
		}
		return true
	})
}

// Issue 3: a scale during a reload is refused with 409 and changes nothing;
// so is a second reload.
func TestOverlappingOperationsRefused(t *testing.T) {
	t.Parallel()
	cmd := script(t, "sleep 0.7; exec "+bins.worker)
	b := startBalancer(t, 2, "WORKER_CMD="+cmd)
	var wg sync.WaitGroup
	wg.Add(1)
	var reloadCode int
	go func() {
		defer wg.Done()
		reloadCode = b.adminReq("POST", "/admin/reload", "", nil)
	}()
	// The reload replaces two workers that each take 0.7s to start, so it
	// runs at least 1.4s from the moment it is logged.
	waitFor(t, 10*time.Second, "the reload to start", func() bool {
		return strings.Contains(b.out.String(), "rolling reload: workers=")
	})
	var e map[string]any
	if code := b.adminReq("POST", "/admin/scale", `{"workers":4}`, &e); code != http.StatusConflict || e["error"] == nil {
		t.Fatalf("scale during a reload: %d %v, want 409", code, e)
	}
	if code := b.adminReq("POST", "/admin/reload", "", nil); code != http.StatusConflict {
		t.Fatalf("reload during a reload: %d, want 409", code)
	}
	wg.Wait()
	if reloadCode != 200 {
		t.Fatalf("the first reload: %d", reloadCode)
	}
	if r := b.waitHealthy(2, 5*time.Second); r.Totals.Workers != 2 {
		t.Fatalf("workers after refused scale: %+v", r.Totals)
	}
}

// Issue 3: /metrics has requests by upstream and status class, latency,
// in-flight, healthy upstreams, restarts and ejections, memory gauges; and
// ENABLE_MEMORY_MONITORING logs a line per worker.
func TestMetricsAndMemoryLog(t *testing.T) {
	t.Parallel()
	b := startBalancer(t, 2, "ENABLE_MEMORY_MONITORING=true", "MEMORY_REPORT_INTERVAL=100ms")
	for range 10 {
		b.get("/api/health")
	}
	b.get("/nope")
	waitFor(t, 5*time.Second, "memory log lines", func() bool { return strings.Count(b.out.String(), "worker memory") >= 2 })
	m := metricsText(t, b)
	for _, want := range []string{
		`balancer_requests_total{class="2xx",upstream="worker-1"} 5`,
		`balancer_requests_total{class="4xx",upstream=`,
		"balancer_request_duration_seconds_bucket", "balancer_inflight_requests 0",
		"balancer_healthy_upstreams 2", `balancer_worker_restarts_total{cause="crash"} 0`,
		`balancer_ejections_total{upstream="worker-1"} 0`, `balancer_worker_rss_bytes{worker_id="1"}`,
		`balancer_worker_heap_alloc_bytes{worker_id="2"}`, "balancer_rss_bytes",
		"balancer_client_connections 1", // the test client's kept-alive connection
	} {
		if !strings.Contains(m, want) {
			t.Fatalf("/metrics lacks %s:\n%s", want, grepLines(m, "balancer_"))
		}
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func selfPath(t *testing.T) string {
	t.Helper()
	p, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Contract: CLUSTER_MODE=false runs exactly one worker, whatever
// MAX_WORKERS says, and /admin/scale keeps it at one.
func TestClusterModeOffRunsOneWorker(t *testing.T) {
	t.Parallel()
	b := startBalancer(t, 1, "CLUSTER_MODE=false", "MAX_WORKERS=3")
	var e map[string]any
	if code := b.adminReq("POST", "/admin/scale", `{"workers":2}`, &e); code != 422 {
		t.Fatalf("scale to 2 with CLUSTER_MODE=false: %d %v, want 422", code, e)
	}
	if r := b.workers(); r.Totals.Workers != 1 {
		t.Fatalf("workers: %+v", r.Totals)
	}
}
