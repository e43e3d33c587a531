package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Issue 2: consecutive requests rotate over all workers exactly.
func TestRoundRobinRotatesExactly(t *testing.T) {
	t.Parallel()
	b := startBalancer(t, 3, "MAX_WORKERS=3")
	var ids []int
	for range 30 {
		h, err := b.health()
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, h.WorkerID)
	}
	seen := map[int]bool{ids[0]: true, ids[1]: true, ids[2]: true}
	if len(seen) != 3 {
		t.Fatalf("first three requests hit %v, want three different workers", ids[:3])
	}
	for i, id := range ids {
		if id != ids[i%3] {
			t.Fatalf("request %d went to worker %d, want %d; sequence %v", i, id, ids[i%3], ids)
		}
	}
}

// Issue 2: with least_conn, while a slow request holds one worker, new
// requests go to the others.
//
// The slow request lasts 5s, so that on a loaded machine it still holds
// its worker while the 20 quick ones run; the test checks it did.
func TestLeastConnAvoidsBusyWorker(t *testing.T) {
	t.Parallel()
	b := startBalancer(t, 3, "MAX_WORKERS=3", "BALANCE_STRATEGY=least_conn")
	done := make(chan int, 1)
	go func() {
		code, _, _ := b.get("/api/sleep?ms=5000")
		done <- code
	}()
	var busy int
	waitFor(t, 4*time.Second, "a worker holding the slow request", func() bool {
		for _, w := range b.workers().Workers {
			if w.Inflight == 1 {
				busy = w.ID
				return true
			}
		}
		return false
	})
	counts := map[int]int{}
	for range 20 {
		h, err := b.health()
		if err != nil {
			t.Fatal(err)
		}
		counts[h.WorkerID]++
	}
	if counts[busy] != 0 || len(counts) != 2 {
		t.Fatalf("busy worker %d got %d of 20 quick requests; spread %v", busy, counts[busy], counts)
	}
	select {
	case <-done:
		t.Fatal("the slow request ended before the quick ones did: the check proves nothing")
	default:
	}
	if code := <-done; code != 200 {
		t.Fatalf("slow request: %d", code)
	}
}

// Issue 2: kill -9 of a worker while 4 clients send GETs: zero failed GETs,
// and the replacement serves within 1s.
func TestKill9UnderLoadLosesNothing(t *testing.T) {
	t.Parallel()
	b := startBalancer(t, 2)
	l := startLoad(b, 4, "/api/health")
	time.Sleep(300 * time.Millisecond)
	old := b.pidOf(1)
	killed := time.Now()
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var served time.Duration
	waitFor(t, 5*time.Second, "the replacement of worker 1 to serve", func() bool {
		h, err := b.health()
		if err == nil && h.WorkerID == 1 && h.PID != old {
			served = time.Since(killed)
			return true
		}
		return false
	})
	time.Sleep(300 * time.Millisecond)
	l.finish(t)
	t.Logf("kill -9 to replacement serving: %s", served)
	if served > time.Second {
		t.Fatalf("replacement served after %s, want within 1s", served)
	}
	if r := b.workers(); r.Workers[0].Restarts != 1 {
		t.Fatalf("worker 1 restarts = %d, want 1", r.Workers[0].Restarts)
	}
}

// Issue 2: a worker command that exits at once does not stop the balancer,
// the healthy worker keeps serving, and the respawns back off.
func TestCrashingWorkerBacksOff(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	starts := filepath.Join(dir, "starts")
	script := filepath.Join(dir, "worker.sh")
	body := fmt.Sprintf("#!/bin/sh\nif [ \"$WORKER_ID\" = 2 ]; then date +%%s.%%N >> %s; echo 'cannot boot' >&2; exit 3; fi\nexec %s\n", starts, bins.worker)
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	b := launch(t, "WORKER_CMD="+script)
	waitFor(t, 10*time.Second, "worker 1 healthy", func() bool {
		_, err := net.Dial("tcp", b.admin)
		return err == nil && b.pidOf(1) != 0
	})
	l := startLoad(b, 2, "/api/health")
	time.Sleep(3 * time.Second)
	l.finish(t)
	times := readLines(t, starts)
	t.Logf("worker 2 start attempts in ~3s: %d", len(times))
	// No backoff would mean thousands; 0, 100, 200, 400, 800, 1600ms waits
	// give about seven.
	if len(times) < 4 || len(times) > 10 {
		t.Fatalf("worker 2 was started %d times in ~3s, want 4-10 (backing off)", len(times))
	}
	first, last := gap(t, times, 1), gap(t, times, len(times)-1)
	if last <= 2*first {
		t.Fatalf("gaps between starts do not grow: first %.3fs, last %.3fs", first, last)
	}
	if !strings.Contains(b.out.String(), "code=3") {
		t.Fatalf("exit code 3 not in the log")
	}
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines
}

func gap(t *testing.T, times []string, i int) float64 {
	var a, b float64
	fmt.Sscan(times[i-1], &a)
	fmt.Sscan(times[i], &b)
	return b - a
}

// Issue 2: a worker that hangs is out of rotation within HEALTH_INTERVAL x
// UNHEALTHY_THRESHOLD plus one interval, replaced, and no request fails.
//
// It runs alone (not in parallel) so other tests' load does not stretch
// the probe cadence it measures.
func TestHungWorkerReplaced(t *testing.T) {
	b := startBalancer(t, 2, "HEALTH_INTERVAL=500ms", "HEALTH_TIMEOUT=100ms", "UNHEALTHY_THRESHOLD=3")
	l := startLoad(b, 4, "/api/health")
	time.Sleep(200 * time.Millisecond)
	hung := b.pidOf(2)
	stopped := time.Now()
	if err := syscall.Kill(hung, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	var out time.Duration
	waitFor(t, 5*time.Second, "the hung worker out of rotation", func() bool {
		if b.pidOf(2) != hung {
			out = time.Since(stopped)
			return true
		}
		return false
	})
	limit := 500*time.Millisecond*3 + 500*time.Millisecond
	t.Logf("hung worker out of rotation after %s (limit %s)", out, limit)
	if out > limit {
		t.Fatalf("out of rotation after %s, want within %s", out, limit)
	}
	b.waitHealthy(2, 5*time.Second)
	// From now on no request may wait on the hung worker.
	for range 20 {
		start := time.Now()
		h, err := b.health()
		if err != nil || h.PID == hung || time.Since(start) > time.Second {
			t.Fatalf("request after replacement: %+v %v in %s", h, err, time.Since(start))
		}
	}
	waitFor(t, 5*time.Second, "the hung worker killed", func() bool { return !alive(hung) })
	l.finish(t)
}

// Issue 2: SIGTERM with a request in flight: it completes with 200, the
// balancer exits 0, and no worker or socket file remains.
func TestSigtermDrainsAndCleansUp(t *testing.T) {
	t.Parallel()
	b := startBalancer(t, 2)
	pids := []int{b.pidOf(1), b.pidOf(2)}
	res := make(chan int, 1)
	go func() {
		code, _, err := b.get("/api/sleep?ms=1500")
		if err != nil {
			t.Log(err)
		}
		res <- code
	}()
	waitFor(t, 5*time.Second, "the request in flight", func() bool { return b.workers().Totals.Requests > 0 || inflight(b) > 0 })
	b.cmd.Process.Signal(syscall.SIGTERM)
	if code := <-res; code != 200 {
		t.Fatalf("in-flight request got %d, want 200", code)
	}
	if code := b.waitExit(10 * time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	for _, pid := range pids {
		if alive(pid) {
			t.Fatalf("worker %d still running", pid)
		}
	}
	// SOCKET_DIR stays; the balancer's procbal-* directory in it goes.
	if left := procbalDirs(t, b.sockets); len(left) > 0 {
		t.Fatalf("socket directory remains: %v", left)
	}
}

func inflight(b *bal) int64 {
	var n int64
	for _, w := range b.workers().Workers {
		n += w.Inflight
	}
	return n
}

// Issue 2: SIGKILL of the balancer: its workers exit within 1s.
func TestWorkersDieWithBalancer(t *testing.T) {
	t.Parallel()
	b := startBalancer(t, 2)
	pids := []int{b.pidOf(1), b.pidOf(2)}
	b.cmd.Process.Kill()
	killed := time.Now()
	waitFor(t, 3*time.Second, "workers gone", func() bool { return !alive(pids[0]) && !alive(pids[1]) })
	if d := time.Since(killed); d > time.Second {
		t.Fatalf("workers exited %s after the balancer, want within 1s", d)
	}
}

// Issue 2: each bad setting stops the start with a non-zero exit and one
// line naming the variable.
func TestBadSettingsRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ env, name string }{
		{"MAX_WORKERS=-1", "MAX_WORKERS"},
		{"MAX_WORKERS=lots", "MAX_WORKERS"},
		{"BALANCE_STRATEGY=fastest", "BALANCE_STRATEGY"},
		{"HEALTH_INTERVAL=soon", "HEALTH_INTERVAL"},
		{"HEALTH_TIMEOUT=-1s", "HEALTH_TIMEOUT"},
		{"WORKER_CMD=/nonexistent", "WORKER_CMD"},
		{"UNHEALTHY_THRESHOLD=0", "UNHEALTHY_THRESHOLD"},
		{"MAX_BODY_BYTES=huge", "MAX_BODY_BYTES"},
		{"LOG_LEVEL=loud", "LOG_LEVEL"},
		{"LOG_FORMAT=xml", "LOG_FORMAT"},
		{"CLUSTER_MODE=maybe", "CLUSTER_MODE"},
		{"ADMIN_ADDR=0.0.0.0:0", "ADMIN_TOKEN"},
		{"UPSTREAMS=nohost", "UPSTREAMS"},
		{"PROXY_LOOPS=-2", "PROXY_LOOPS"},
		{"PROXY_LOOPS=100000", "PROXY_LOOPS"},
		{"REQUEST_BUFFERING=maybe", "REQUEST_BUFFERING"},
		{"CLIENT_BODY_TIMEOUT=0s", "CLIENT_BODY_TIMEOUT"},
		{"CLIENT_BODY_TIMEOUT=-5s", "CLIENT_BODY_TIMEOUT"},
		{"RESPONSE_BUFFER=lots", "RESPONSE_BUFFER"},
		{"RESPONSE_BUFFER=-1MiB", "RESPONSE_BUFFER"},
		{"BUFFER_MEMORY=0", "BUFFER_MEMORY"},
		{"MAX_TUNNELS=0", "MAX_TUNNELS"},
		{"TUNNEL_IDLE_TIMEOUT=never", "TUNNEL_IDLE_TIMEOUT"},
		{"STICKY=sometimes", "STICKY"},
		{"STICKY=header:", "STICKY"},
		{"STICKY_COOKIE=a;b", "STICKY_COOKIE"},
	} {
		t.Run(tc.env, func(t *testing.T) {
			t.Parallel()
			b := launch(t, tc.env)
			code := b.waitExit(10 * time.Second)
			out := strings.TrimSpace(b.out.String())
			if code == 0 || strings.Count(out, "\n") != 0 || !strings.Contains(out, tc.name) {
				t.Fatalf("exit %d, output %q: want non-zero and one line naming %s", code, out, tc.name)
			}
		})
	}
}

// Issue 2: requests with ambiguous framing are refused and never reach a
// worker as two requests.
func TestAmbiguousFramingRefused(t *testing.T) {
	t.Parallel()
	record := filepath.Join(t.TempDir(), "record")
	self, _ := os.Executable()
	b := startBalancer(t, 1, "MAX_WORKERS=1", "WORKER_CMD="+self, "E2E_HELPER=record", "RECORD_FILE="+record)
	smuggle := "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
	for name, req := range map[string]string{
		"cl+te": "POST /first HTTP/1.1\r\nHost: x\r\nContent-Length: " + fmt.Sprint(len(smuggle)+5) +
			"\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggle,
		"two lengths": "POST /first HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: " +
			fmt.Sprint(len(smuggle)) + "\r\n\r\n" + smuggle,
		"bad te":       "POST /first HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked, x\r\n\r\n0\r\n\r\n",
		"control char": "GET /first HTTP/1.1\r\nHost: x\r\nX-A: b\x01c\r\n\r\n",
		"bad length":   "POST /first HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\nab",
	} {
		// An unknown transfer coding may be answered 501 (RFC 9112 6.1).
		status := rawRequest(t, b.addr, req)
		if status != "" && !strings.Contains(status, " 400 ") && !(name == "bad te" && strings.Contains(status, " 501 ")) {
			t.Errorf("%s: got %q, want 400 or a closed connection", name, status)
		}
	}
	if code, _, err := b.get("/after"); err != nil || code != 200 {
		t.Fatalf("normal request after the refused ones: %d %v", code, err)
	}
	var seen []string
	for _, l := range readLines(t, record) {
		if !strings.HasPrefix(l, "env ") {
			seen = append(seen, l)
		}
	}
	if len(seen) != 1 || !strings.HasPrefix(seen[0], "GET /after") {
		t.Fatalf("the worker saw %q, want only GET /after", seen)
	}
}

// rawRequest writes req on a new connection and returns the status line, or
// "" when the connection closed without one.
func rawRequest(t *testing.T, addr, req string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(req)); err != nil {
		return ""
	}
	line, _ := bufio.NewReader(c).ReadString('\n')
	return line
}
