package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Failure checks: while a steady client load runs against the balancer,
// kill a worker, scale, and reload; every request must still succeed.
const (
	loadClients  = 4                     // goroutines sending GET /api/health
	pollInterval = 10 * time.Millisecond // admin API polling
	settleTime   = 500 * time.Millisecond
	eventTimeout = 60 * time.Second
)

// eventResult is the outcome of one failure check.
type eventResult struct {
	name     string
	took     time.Duration // kill: until the replacement served; others: until settled
	detail   string
	requests int64
	failed   int64
	err      error // the check itself could not complete
}

// loadGen keeps loadClients goroutines sending GET /api/health and counts
// answers, failures (transport errors or non-200) and the first time each
// worker pid answered.
type loadGen struct {
	url       string
	client    *http.Client
	requests  atomic.Int64
	failed    atomic.Int64
	lastErr   atomic.Value // string
	firstSeen sync.Map     // pid -> time.Time
	stop      chan struct{}
	wg        sync.WaitGroup
}

// startLoad starts the load against baseURL.
func startLoad(baseURL string) *loadGen {
	tr := &http.Transport{MaxIdleConnsPerHost: loadClients}
	l := &loadGen{url: baseURL + "/api/health", stop: make(chan struct{}),
		client: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
	for range loadClients {
		l.wg.Add(1)
		go l.loop()
	}
	return l
}

// loop sends requests until halted.
func (l *loadGen) loop() {
	defer l.wg.Done()
	for {
		select {
		case <-l.stop:
			return
		default:
		}
		l.requests.Add(1)
		if err := l.once(); err != nil {
			l.failed.Add(1)
			l.lastErr.Store(err.Error())
		}
	}
}

// once sends one request and records which worker answered.
func (l *loadGen) once() error {
	resp, err := l.client.Get(l.url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %s", resp.Status)
	}
	var h struct {
		PID int `json:"pid"`
	}
	if json.Unmarshal(body, &h) == nil && h.PID != 0 {
		l.firstSeen.LoadOrStore(h.PID, time.Now())
	}
	return nil
}

// halt stops the load and returns the request and failure counts.
func (l *loadGen) halt() (requests, failed int64) {
	close(l.stop)
	l.wg.Wait()
	l.client.CloseIdleConnections()
	return l.requests.Load(), l.failed.Load()
}

// seen waits until a response from pid arrived and returns when it did.
func (l *loadGen) seen(ctx context.Context, pid int, timeout time.Duration) (time.Time, error) {
	err := poll(ctx, timeout, func() (bool, error) {
		_, ok := l.firstSeen.Load(pid)
		return ok, nil
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("no answer from the new worker (pid %d): %w", pid, err)
	}
	t, _ := l.firstSeen.Load(pid)
	return t.(time.Time), nil
}

// poll calls cond every pollInterval until it reports true or fails, the
// timeout passes, or ctx ends.
func poll(ctx context.Context, timeout time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		ok, err := cond()
		if ok {
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pollInterval):
		}
	}
	if last != nil {
		return fmt.Errorf("timed out after %s: %w", timeout, last)
	}
	return fmt.Errorf("timed out after %s", timeout)
}

// runFailureChecks runs the kill, scale and reload checks in turn, each
// under its own fresh load.
func runFailureChecks(ctx context.Context, b *system, n int) []eventResult {
	checks := []struct {
		name string
		run  func(context.Context, *system, *loadGen, int) (time.Duration, string, error)
	}{
		{"kill -9 of a worker", checkKill},
		{fmt.Sprintf("scale %d → %d → %d", n, n+2, n), checkScale},
		{"rolling reload", checkReload},
	}
	var out []eventResult
	for _, c := range checks {
		if ctx.Err() != nil {
			break
		}
		fmt.Fprintf(os.Stderr, "bench: failure check: %s\n", c.name)
		out = append(out, runCheck(ctx, b, n, c.name, c.run))
	}
	return out
}

// runCheck runs one check under load: the load starts before the event and
// keeps going for settleTime after it.
func runCheck(ctx context.Context, b *system, n int, name string,
	run func(context.Context, *system, *loadGen, int) (time.Duration, string, error)) eventResult {
	l := startLoad(b.baseURL)
	time.Sleep(settleTime)
	took, detail, err := run(ctx, b, l, n)
	time.Sleep(settleTime)
	r := eventResult{name: name, took: took, detail: detail, err: err}
	r.requests, r.failed = l.halt()
	if last, ok := l.lastErr.Load().(string); ok && r.failed > 0 {
		r.detail += "; last failure: " + last
	}
	return r
}

// checkKill kills a healthy worker with SIGKILL and measures the time until
// its replacement answered a request through the balancer.
func checkKill(ctx context.Context, b *system, l *loadGen, _ int) (time.Duration, string, error) {
	doc, err := getWorkers(b.adminURL)
	if err != nil {
		return 0, "", err
	}
	victim, ok := firstHealthy(doc)
	if !ok {
		return 0, "", errors.New("no healthy worker to kill")
	}
	start := time.Now()
	if err := syscall.Kill(victim.PID, syscall.SIGKILL); err != nil {
		return 0, "", fmt.Errorf("kill %d: %w", victim.PID, err)
	}
	newPID, err := waitReplacement(ctx, b.adminURL, victim)
	if err != nil {
		return 0, "", err
	}
	healthy := time.Since(start)
	served, err := l.seen(ctx, newPID, eventTimeout)
	if err != nil {
		return 0, "", err
	}
	detail := fmt.Sprintf("worker %s: pid %d → %d; /admin/workers showed it healthy at the %s poll",
		victim.ID, victim.PID, newPID, fmtSeconds(healthy))
	return served.Sub(start), detail, nil
}

// firstHealthy returns a healthy local worker.
func firstHealthy(doc workersDoc) (workerInfo, bool) {
	for _, w := range doc.Workers {
		if w.State == "healthy" && w.PID > 0 {
			return w, true
		}
	}
	return workerInfo{}, false
}

// waitReplacement polls /admin/workers until the slot of victim shows a
// new, healthy pid, and returns that pid.
func waitReplacement(ctx context.Context, adminURL string, victim workerInfo) (int, error) {
	var pid int
	err := poll(ctx, eventTimeout, func() (bool, error) {
		doc, err := getWorkers(adminURL)
		if err != nil {
			return false, err
		}
		for _, w := range doc.Workers {
			if w.ID == victim.ID && w.PID != victim.PID && w.PID > 0 && w.State == "healthy" {
				pid = w.PID
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return 0, fmt.Errorf("replacement of worker %s: %w", victim.ID, err)
	}
	return pid, nil
}

// checkScale scales to n+2 workers, waits until all are healthy, scales back
// to n and waits until the extra ones are gone.
func checkScale(ctx context.Context, b *system, _ *loadGen, n int) (time.Duration, string, error) {
	start := time.Now()
	if err := postAdmin(b.adminURL, "/admin/scale", scaleBody(n+2)); err != nil {
		return 0, "", err
	}
	if err := waitSettled(ctx, b.adminURL, n+2, nil); err != nil {
		return 0, "", fmt.Errorf("scale up: %w", err)
	}
	up := time.Since(start)
	if err := postAdmin(b.adminURL, "/admin/scale", scaleBody(n)); err != nil {
		return 0, "", err
	}
	if err := waitSettled(ctx, b.adminURL, n, nil); err != nil {
		return 0, "", fmt.Errorf("scale down: %w", err)
	}
	return time.Since(start), fmt.Sprintf("%d healthy after %s", n+2, fmtSeconds(up)), nil
}

// checkReload starts a rolling reload and waits until every worker was
// replaced and the new ones are healthy.
func checkReload(ctx context.Context, b *system, _ *loadGen, n int) (time.Duration, string, error) {
	doc, err := getWorkers(b.adminURL)
	if err != nil {
		return 0, "", err
	}
	old := map[int]bool{}
	for _, w := range doc.live() {
		old[w.PID] = true
	}
	start := time.Now()
	if err := postAdmin(b.adminURL, "/admin/reload", nil); err != nil {
		return 0, "", err
	}
	if err := waitSettled(ctx, b.adminURL, n, old); err != nil {
		return 0, "", fmt.Errorf("reload: %w", err)
	}
	return time.Since(start), fmt.Sprintf("all %d workers replaced", n), nil
}

// waitSettled polls /admin/workers until exactly n live workers remain, all
// healthy, none of them with a pid in old.
func waitSettled(ctx context.Context, adminURL string, n int, old map[int]bool) error {
	return poll(ctx, eventTimeout, func() (bool, error) {
		doc, err := getWorkers(adminURL)
		if err != nil {
			return false, err
		}
		live := doc.live()
		if len(live) != n {
			return false, fmt.Errorf("%d live workers, want %d", len(live), n)
		}
		for _, w := range live {
			if w.State != "healthy" || old[w.PID] {
				return false, fmt.Errorf("worker %s (pid %d) is %s", w.ID, w.PID, w.State)
			}
		}
		return true, nil
	})
}

// failureVerdict turns failed requests or incomplete checks into an error.
func failureVerdict(events []eventResult) error {
	var failed int64
	var broken int
	for _, e := range events {
		failed += e.failed
		if e.err != nil {
			broken++
		}
	}
	switch {
	case failed > 0:
		return fmt.Errorf("%d requests failed during the failure checks; must be 0", failed)
	case broken > 0:
		return fmt.Errorf("%d failure checks did not complete", broken)
	}
	return nil
}
