package main

// Issue 13, sticky sessions through the real balancer binary (STICKY=ip's
// ring movement is measured by balancer/pool/sticky_test.go).

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"syscall"
	"testing"
	"time"
)

// stickyAnswer is one answer of the realtime helper's /id.
type stickyAnswer struct {
	status      int
	worker, pid int
	setCookie   string // the sticky cookie the answer sets; "" for none
}

// stickyGet sends GET /id with the sticky cookie value (none when empty).
func stickyGet(c *http.Client, b *bal, cookie string) (stickyAnswer, error) {
	req, _ := http.NewRequest("GET", "http://"+b.addr+"/id", nil)
	if cookie != "" {
		req.AddCookie(&http.Cookie{Name: "procbal_sticky", Value: cookie})
	}
	resp, err := c.Do(req)
	if err != nil {
		return stickyAnswer{}, err
	}
	defer resp.Body.Close()
	a := stickyAnswer{status: resp.StatusCode}
	for _, ck := range resp.Cookies() {
		if ck.Name == "procbal_sticky" {
			a.setCookie = ck.Value
		}
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return a, err
	}
	if a.status != 200 {
		return a, fmt.Errorf("status %d: %s", a.status, body)
	}
	var id struct {
		WorkerID int `json:"worker_id"`
		PID      int `json:"pid"`
	}
	if err := json.Unmarshal(body, &id); err != nil {
		return a, fmt.Errorf("%v: %q", err, body)
	}
	a.worker, a.pid = id.WorkerID, id.PID
	return a, nil
}

// Issue 13: STICKY=cookie. 1,000 requests with one cookie, over several
// connections at once, all reach one worker; a tampered or forged cookie is
// a fresh pick (a new cookie, and round robin as if there were none); with
// its target killed (kill -9), the next request succeeds on another worker
// with a new cookie, and once the slot's replacement is healthy the old
// cookie leads to it. Replacements get ready 500 ms after their start
// (READY_DELAY), so the request after the kill meets the slot empty.
func TestStickyCookieE2E(t *testing.T) {
	t.Parallel()
	b := startBalancer(t, 4, realtimeEnv(t, "MAX_WORKERS=4", "STICKY=cookie", "READY_DELAY=500ms")...)
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	first, err := stickyGet(c, b, "")
	if err != nil {
		t.Fatal(err)
	}
	if first.setCookie == "" {
		t.Fatal("a request without a cookie got no sticky cookie")
	}
	cookie := first.setCookie

	// 1,000 requests, 8 at a time, with the cookie.
	var mu sync.Mutex
	seen := map[[2]int]int{}
	var errs []error
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 125 {
				a, err := stickyGet(c, b, cookie)
				mu.Lock()
				switch {
				case err != nil:
					errs = append(errs, err)
				case a.setCookie != "":
					errs = append(errs, fmt.Errorf("a request with a valid cookie was given a new one, %q", a.setCookie))
				default:
					seen[[2]int{a.worker, a.pid}]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 || len(seen) != 1 || seen[[2]int{first.worker, first.pid}] != 1000 {
		t.Fatalf("1,000 requests with the cookie of worker %d (pid %d) reached %v (worker, pid: count); errors %v",
			first.worker, first.pid, seen, errs)
	}

	// Tampered (one hex digit of the signature changed) and forged
	// cookies are fresh picks: each gets a new cookie, and 8 of them in a
	// row go round the 4 workers rather than to the one they name.
	tampered := cookie[:len(cookie)-1] + "0"
	if cookie[len(cookie)-1] == '0' {
		tampered = cookie[:len(cookie)-1] + "1"
	}
	for _, bad := range []string{tampered, "w1", "w1.00000000000000000000000000000000", "garbage"} {
		workers := map[int]bool{}
		for range 8 {
			a, err := stickyGet(c, b, bad)
			if err != nil {
				t.Fatalf("cookie %q: %v", bad, err)
			}
			if a.setCookie == "" || a.setCookie == bad {
				t.Fatalf("cookie %q: answer set %q, want a fresh pick's new cookie", bad, a.setCookie)
			}
			workers[a.worker] = true
		}
		if len(workers) != 4 {
			t.Fatalf("8 requests with cookie %q reached workers %v, want all 4 (a fresh pick each)", bad, workers)
		}
	}

	// The target killed: the next request with its cookie succeeds on
	// another worker, with a new cookie, which then sticks.
	target := first.worker
	pid := b.pidOf(target)
	if pid != first.pid {
		t.Fatalf("/admin/workers shows pid %d for worker %d, the answers said %d", pid, target, first.pid)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	a, err := stickyGet(c, b, cookie)
	if err != nil {
		t.Fatalf("the request after the kill: %v", err)
	}
	if a.worker == target || a.setCookie == "" || a.setCookie == cookie {
		t.Fatalf("after the kill of worker %d: answer from worker %d with cookie %q, want another worker and a new cookie", target, a.worker, a.setCookie)
	}
	moved := a
	for range 20 {
		a, err := stickyGet(c, b, moved.setCookie)
		if err != nil || a.pid != moved.pid || a.setCookie != "" {
			t.Fatalf("with the new cookie: pid %d, set %q, err %v; want pid %d and no new cookie", a.pid, a.setCookie, err, moved.pid)
		}
	}
	// The slot's replacement keeps its slot: once healthy, the old cookie
	// reaches it.
	b.waitHealthy(4, 10*time.Second)
	back, err := stickyGet(c, b, cookie)
	if err != nil || back.worker != target || back.pid == pid || back.setCookie != "" {
		t.Fatalf("the old cookie after worker %d's replacement got healthy: worker %d pid %d set %q err %v; want the replacement, no new cookie",
			target, back.worker, back.pid, back.setCookie, err)
	}
	t.Logf("cookie %s: 1,000 requests on worker %d; after its kill -9: worker %d, cookie %s; then the replacement (pid %d) again",
		cookie, target, moved.worker, moved.setCookie, back.pid)
}
