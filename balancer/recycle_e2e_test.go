package main

import (
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// MAX_MEMORY_RESTART_MB below a fresh worker's RSS recycled it 19 times in
// 4s, forever. Recycles back off like crashes, and one error says the
// limit cannot be met, naming the limit and the RSS.
func TestRecycleBelowFootprintBacksOff(t *testing.T) {
	t.Parallel()
	b := startBalancer(t, 1, "MAX_WORKERS=1", "MAX_MEMORY_RESTART_MB=1")
	l := startLoad(b, 1, "/api/health")
	time.Sleep(4 * time.Second)
	l.finish(t)
	w := b.workers().Workers[0]
	t.Logf("restarts in ~4s: %d (cause %s)", w.Restarts, w.RestartCause)
	if w.RestartCause != "memory" {
		t.Fatalf("restart cause %q, want memory", w.RestartCause)
	}
	// 0, 100, 200, 400, 800 and 1600ms between recycles (3.1s), plus each
	// replacement's start and the 250ms check: five or six in 4s, not
	// twenty; a seventh comes 3.2s later.
	if w.Restarts >= 7 {
		t.Fatalf("%d memory recycles in ~4s, want fewer than 7 (backing off)", w.Restarts)
	}
	out := b.out.String()
	const msg = "memory restart limit is below a fresh worker's footprint"
	if n := strings.Count(out, msg); n != 1 {
		t.Fatalf("%q logged %d times, want once", msg, n)
	}
	line := grepLines(out, msg)
	if !strings.Contains(line, "limit_mb=1") || !regexp.MustCompile(`rss_mb=[1-9]`).MatchString(line) {
		t.Fatalf("the error does not name the limit and the RSS: %s", line)
	}
}

// MAX_REQUESTS was polled every 250ms: 1,000 requests with MAX_REQUESTS=100
// caused only 3 recycles. The request that reaches the limit signals the
// supervisor, and the spent worker leaves rotation while another is
// healthy, so each worker serves about its MAX_REQUESTS.
//
// A worker that must stay in rotation because the other one's replacement
// is still starting (10-20ms here) serves past its limit at whatever rate
// requests come. So the test runs alone (not in parallel) and sends each
// request on its own connection, as separate clients would: on one
// kept-alive connection this balancer takes some 4,000 requests a second,
// and the count would measure start-up time more than the signal.
func TestRecycleEveryMaxRequests(t *testing.T) {
	b := startBalancer(t, 2, "MAX_REQUESTS=100")
	fresh := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	start := time.Now()
	for i := range 1000 {
		resp, err := fresh.Get("http://" + b.addr + "/api/health")
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: %d %s", i, resp.StatusCode, body)
		}
	}
	t.Logf("1000 requests in %s", time.Since(start))
	var n int
	waitFor(t, 5*time.Second, "7 max_requests recycles", func() bool {
		n = maxRequestRestarts(t, b)
		return n >= 7
	})
	t.Logf("max_requests recycles for 1000 requests: %d", n)
	if n > 10 {
		t.Fatalf("%d recycles for 1000 requests at MAX_REQUESTS=100 (+10%% jitter), want at most 10", n)
	}
}

// maxRequestRestarts reads balancer_worker_restarts_total for max_requests.
func maxRequestRestarts(t *testing.T, b *bal) int {
	t.Helper()
	const name = `balancer_worker_restarts_total{cause="max_requests"} `
	for _, line := range strings.Split(metricsText(t, b), "\n") {
		if v, ok := strings.CutPrefix(line, name); ok {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return int(n)
		}
	}
	t.Fatal("no max_requests restarts in /metrics")
	return 0
}
