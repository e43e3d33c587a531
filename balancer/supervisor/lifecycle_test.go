package supervisor

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/procbal/procbal/balancer/pool"
)

// Start is manage from an empty table: slots 1..n, each admitted to the
// pool after its first healthy answer, each serving on its own socket.
func TestStartAdmitsHealthyWorkers(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 3, "serve")
	select {
	case <-h.sup.Ready():
	case <-time.After(20 * time.Second):
		t.Fatal("Ready not closed")
	}
	pids := h.waitServing(3)
	for id := 1; id <= 3; id++ {
		v := h.view(id)
		body, err := get(v.Upstream, "/")
		if err != nil || body != fmt.Sprintf("%d %d\n", id, pids[id]) {
			t.Fatalf("worker %d answered %q, %v; want its id and pid %d", id, body, err, pids[id])
		}
		if v.Restarts != 0 || v.CrashLoop || v.Upstream.Kind != pool.Local {
			t.Fatalf("worker %d: %+v", id, v)
		}
	}
	if n := h.sup.Active(); n != 3 {
		t.Fatalf("Active = %d, want 3", n)
	}
}

// A worker that never answers its health check is never routed to, and is
// killed once StartTimeout has passed, and a new one started.
func TestNeverHealthyKilledAtStartTimeout(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"never-healthy", "hang"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			const timeout = 500 * time.Millisecond
			h := newHarness(t, 1, mode, func(c *Config) { c.StartTimeout = timeout })
			h.waitFor(20*time.Second, "a first start", func() bool { return len(h.startRecords()) > 0 })
			first := h.view(1).Upstream // StartedAt: when it was spawned
			if first.PID != h.startRecords()[0].pid {
				t.Fatalf("worker 1 is %d, the first start %d", first.PID, h.startRecords()[0].pid)
			}
			h.waitFor(10*time.Second, "the first worker killed", func() bool { return !alive(first.PID) })
			if ran := time.Since(first.StartedAt); ran < timeout {
				t.Fatalf("killed after %s, before the start timeout %s", ran, timeout)
			}
			h.waitFor(20*time.Second, "a second start", func() bool { return len(h.startRecords()) >= 2 })
			if u := h.pool.Pick(pool.Tried{}); u != nil || h.pool.Healthy() != 0 {
				t.Fatalf("a never healthy worker was routed to: %v, %d healthy", u, h.pool.Healthy())
			}
			if h.logged("worker not healthy within start timeout, killing it") == 0 {
				t.Fatal("start timeout not logged")
			}
		})
	}
}

// A worker killed while serving is a crash: respawned at once (the first
// crash has no backoff), logged as a possible OOM kill, counted.
func TestKilledWorkerRespawned(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 2, "serve")
	before := h.waitServing(2)
	killed := time.Now()
	if err := syscall.Kill(before[1], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	h.waitFor(20*time.Second, "worker 1 respawned", func() bool {
		now := h.serving()
		return now[1] != 0 && now[1] != before[1]
	})
	t.Logf("SIGKILL to a healthy respawn: %s", time.Since(killed).Round(time.Millisecond))
	if v := h.view(1); v.Restarts != 1 || v.Cause != CauseCrash || v.CrashLoop {
		t.Fatalf("worker 1 after a crash: %+v", v)
	}
	if h.serving()[2] != before[2] || h.view(2).Restarts != 0 {
		t.Fatalf("worker 2 changed: %v -> %v", before, h.serving())
	}
	if h.sup.Restarts()[CauseCrash] != 1 || h.logged("perhaps out of memory") != 1 {
		t.Fatalf("crash not counted or logged: %v", h.sup.Restarts())
	}
}

// A worker that cannot boot is respawned with backoff: none after the
// first crash, then 100ms doubling; the slot shows crash_loop with the
// last exit and output, and the loop is one error line.
func TestCrashRespawnBacksOff(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1, "exit")
	select {
	case <-h.sup.StartFailed():
	case <-time.After(20 * time.Second):
		t.Fatal("StartFailed not closed")
	}
	h.waitFor(20*time.Second, "five starts", func() bool { return len(h.startRecords()) >= 5 })
	time.Sleep(time.Until(h.startRecords()[0].at.Add(2500 * time.Millisecond)))
	starts := h.startRecords()
	// Timers never fire early, so these bounds hold however loaded the
	// machine: start k+1 comes at least backoff(k) after start k, and a
	// seventh at least 3.1s after the first.
	var within int
	for k, r := range starts {
		if r.at.Sub(starts[0].at) < 2500*time.Millisecond {
			within++
		}
		if k > 0 && r.at.Sub(starts[k-1].at) < backoff(k) {
			t.Fatalf("start %d came %s after the last, want at least backoff(%d) = %s", k+1, r.at.Sub(starts[k-1].at), k, backoff(k))
		}
	}
	if within > 6 {
		t.Fatalf("%d starts in 2.5s, want at most 6 (backing off)", within)
	}
	v := h.view(1)
	if !v.CrashLoop || v.LastExit != "exit status 3" || v.LastOutput != "cannot boot" {
		t.Fatalf("crash looping slot: %+v", v)
	}
	if n := h.logged("worker crash loop, respawning with backoff"); n != 1 {
		t.Fatalf("crash loop error logged %d times, want once", n)
	}
	if h.pool.Healthy() != 0 || h.sup.Restarts()[CauseCrash] < 4 {
		t.Fatalf("healthy %d, restarts %v", h.pool.Healthy(), h.sup.Restarts())
	}
}

// Scale sets the target count: up adds the lowest free ids and returns
// once they are healthy; down retires the oldest first and returns once
// they are out of rotation, and they stop after draining.
func TestScaleUpAndDown(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 2, "serve")
	h.waitServing(2)
	if err := h.sup.Scale(h.ctx(), 4); err != nil {
		t.Fatal(err)
	}
	if n := h.pool.Healthy(); n != 4 || h.sup.Active() != 4 {
		t.Fatalf("after scaling to 4: %d healthy, %d active", n, h.sup.Active())
	}
	four := h.serving()
	if err := h.sup.Scale(h.ctx(), 1); err != nil {
		t.Fatal(err)
	}
	if n := h.pool.Healthy(); n != 1 || h.sup.Active() != 1 {
		t.Fatalf("after scaling to 1: %d healthy, %d active", n, h.sup.Active())
	}
	// Slot 4 was spawned last: the others are older and go first.
	if left := h.serving(); len(left) != 1 || left[4] != four[4] {
		t.Fatalf("after scaling to 1, serving %v (of %v), want worker 4", left, four)
	}
	h.waitFor(20*time.Second, "the retired workers gone", func() bool {
		return !alive(four[1]) && !alive(four[2]) && !alive(four[3]) && len(h.sup.Workers()) == 1
	})
	if err := h.sup.Scale(h.ctx(), 2); err != nil {
		t.Fatal(err)
	}
	if now := h.serving(); len(now) != 2 || now[4] != four[4] || now[1] == 0 {
		t.Fatalf("after scaling to 2: %v, want workers 1 (reused id) and 4", now)
	}
	if h.logged("worker stopped by SIGTERM") < 3 && h.logged("worker exited") < 3 {
		t.Fatalf("the retired workers did not stop on SIGTERM:\n%s", h.log)
	}
}

// Reload bumps the target generation: every worker is replaced, one at a
// time, each replacement healthy before the old one leaves rotation, so
// the pool never has fewer healthy workers than the target.
func TestReloadRollsOneAtATime(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 3, "serve")
	before := h.waitServing(3)
	lowest := watchHealthy(h.pool)
	err := h.sup.Reload(h.ctx())
	low := lowest()
	if err != nil {
		t.Fatal(err)
	}
	after := h.serving()
	for id, pid := range before {
		if after[id] == 0 || after[id] == pid {
			t.Fatalf("worker %d: pid %d before, %d after the reload", id, pid, after[id])
		}
		if v := h.view(id); v.Restarts != 1 || v.Cause != CauseReload {
			t.Fatalf("worker %d after the reload: %+v", id, v)
		}
	}
	if low < 3 {
		t.Fatalf("%d healthy workers during the reload, want never fewer than 3", low)
	}
	if h.sup.Restarts()[CauseReload] != 3 {
		t.Fatalf("restarts %v, want 3 reloads", h.sup.Restarts())
	}
	h.waitFor(20*time.Second, "the old workers stopped", func() bool {
		return !alive(before[1]) && !alive(before[2]) && !alive(before[3])
	})
}

// watchHealthy samples p's healthy upstreams until the returned function
// is called, which returns the fewest it saw.
func watchHealthy(p *pool.Pool) (lowest func() int) {
	low := p.Healthy()
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			low = min(low, p.Healthy())
			time.Sleep(100 * time.Microsecond)
		}
	}()
	return func() int {
		close(stop)
		<-done
		return low
	}
}

// A reload whose replacement never gets healthy stops with an error naming
// the worker; the old workers keep serving and are not tried again. While
// it runs, a scale or a second reload is refused with ErrBusy.
func TestReloadWithNeverHealthyReplacement(t *testing.T) {
	t.Parallel()
	mode := modeFile(t, "serve")
	h := newHarness(t, 2, "@"+mode, func(c *Config) { c.StartTimeout = time.Second })
	before := h.waitServing(2)
	setMode(t, mode, "never-healthy")
	res := make(chan error, 1)
	go func() { res <- h.sup.Reload(h.ctx()) }()
	h.waitFor(10*time.Second, "a replacement starting", func() bool { return len(h.pool.Upstreams()) == 3 })
	if err := h.sup.Scale(h.ctx(), 3); !errors.Is(err, ErrBusy) {
		t.Fatalf("scale during a reload: %v, want ErrBusy", err)
	}
	if err := h.sup.Reload(h.ctx()); !errors.Is(err, ErrBusy) {
		t.Fatalf("reload during a reload: %v, want ErrBusy", err)
	}
	err := <-res
	if err == nil || !strings.Contains(err.Error(), "replacing worker 1") {
		t.Fatalf("reload with a never healthy replacement: %v", err)
	}
	time.Sleep(500 * time.Millisecond) // no second try
	if now := h.serving(); now[1] != before[1] || now[2] != before[2] || len(h.startRecords()) != 3 {
		t.Fatalf("after the failed reload: serving %v (was %v), %d starts", now, before, len(h.startRecords()))
	}
	if h.sup.Restarts()[CauseReload] != 0 || h.view(1).Restarts != 0 {
		t.Fatalf("a failed reload counted restarts: %v", h.sup.Restarts())
	}
	setMode(t, mode, "serve")
	if err := h.sup.Reload(h.ctx()); err != nil {
		t.Fatalf("reload after fixing the command: %v", err)
	}
	if now := h.serving(); now[1] == before[1] || now[2] == before[2] {
		t.Fatalf("second reload kept pids: %v -> %v", before, now)
	}
}

// A serving worker that crashes while its replacement starts is replaced
// by that replacement, not by a respawn: the reload then ends with it.
func TestCrashDuringReplacementPromotesIt(t *testing.T) {
	t.Parallel()
	mode := modeFile(t, "serve")
	h := newHarness(t, 1, "@"+mode)
	before := h.waitServing(1)
	setMode(t, mode, "slow")
	res := make(chan error, 1)
	go func() { res <- h.sup.Reload(h.ctx()) }()
	h.waitFor(10*time.Second, "the replacement starting", func() bool { return len(h.startRecords()) == 2 })
	if err := syscall.Kill(before[1], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := <-res; err != nil {
		t.Fatalf("reload: %v", err)
	}
	replacement := h.startRecords()[1].pid
	if now := h.serving(); now[1] != replacement || len(h.startRecords()) != 2 {
		t.Fatalf("serving %v after %d starts, want the replacement %d and no respawn", now, len(h.startRecords()), replacement)
	}
	if v := h.view(1); v.Cause != CauseCrash || v.Restarts != 1 {
		t.Fatalf("worker 1: %+v", v)
	}
}

// A worker that stops answering (SIGSTOP: it cannot even take SIGTERM) is
// out of rotation after UnhealthyThreshold probes, replaced at once, and
// SIGKILLed after StopGrace.
func TestUnhealthyWorkerReplacedAndKilled(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 2, "serve", func(c *Config) { c.StopGrace = 500 * time.Millisecond })
	before := h.waitServing(2)
	if err := syscall.Kill(before[2], syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(before[2], syscall.SIGKILL) })
	h.waitFor(20*time.Second, "worker 2 replaced", func() bool {
		now := h.serving()
		return now[2] != 0 && now[2] != before[2]
	})
	h.waitFor(20*time.Second, "the hung worker killed", func() bool { return !alive(before[2]) })
	if v := h.view(2); v.Restarts != 1 || v.Cause != CauseUnhealthy {
		t.Fatalf("worker 2: %+v", v)
	}
	if h.logged("worker did not stop in time, killing it") != 1 {
		t.Fatal("no SIGKILL after the grace logged")
	}
}

// A worker that ignores SIGTERM is SIGKILLed once StopGrace has passed,
// after a drain and at shutdown alike.
func TestIgnoredSigtermKilledAfterGrace(t *testing.T) {
	t.Parallel()
	const grace = 500 * time.Millisecond
	h := newHarness(t, 2, "ignore-sigterm", func(c *Config) { c.StopGrace = grace })
	before := h.waitServing(2)
	asked := time.Now()
	if err := h.sup.Scale(h.ctx(), 1); err != nil {
		t.Fatal(err)
	}
	h.waitFor(20*time.Second, "the retired worker killed", func() bool { return !alive(before[1]) })
	if took := time.Since(asked); took < grace {
		t.Fatalf("killed %s after the scale, before the grace %s", took, grace)
	}
	if !alive(before[2]) || h.logged("worker did not stop in time, killing it") != 1 {
		t.Fatalf("worker 2 alive %v; kill logged %d times", alive(before[2]), h.logged("worker did not stop in time"))
	}
	stopped := time.Now()
	h.shutdown(grace)
	if took := time.Since(stopped); alive(before[2]) || took < grace/2 {
		t.Fatalf("shutdown took %s, worker 2 alive %v", took, alive(before[2]))
	}
}

// A retired worker drains: it is out of rotation at once, and stopped
// when its requests are done, or when DrainTimeout has passed.
func TestDrainWaitsForRequests(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		timeout time.Duration
		release bool
	}{{"requests done", 20 * time.Second, true}, {"drain timeout", time.Second, false}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, 2, "serve", func(c *Config) { c.DrainTimeout = tc.timeout })
			before := h.waitServing(2)
			u := h.view(1).Upstream // the oldest: the first to be scaled away
			if !u.Acquire() {
				t.Fatal("worker 1 not available")
			}
			asked := time.Now()
			if err := h.sup.Scale(h.ctx(), 1); err != nil {
				t.Fatal(err)
			}
			time.Sleep(200 * time.Millisecond)
			if !alive(before[1]) || u.State() != pool.Draining || u.Available() {
				t.Fatalf("worker 1 with a request in flight: alive %v, state %s", alive(before[1]), u.State())
			}
			if tc.release {
				u.Release(200)
			}
			h.waitFor(20*time.Second, "worker 1 stopped", func() bool { return !alive(before[1]) })
			if took := time.Since(asked); !tc.release && took < tc.timeout {
				t.Fatalf("stopped %s after the scale, before the drain timeout %s", took, tc.timeout)
			}
			if timedOut := h.logged("drain timeout") > 0; timedOut == tc.release {
				t.Fatalf("drain timeout logged: %v", timedOut)
			}
		})
	}
}

// MAX_REQUESTS: the request that reaches a worker's limit has it replaced,
// replacement first, with the cause shown.
func TestRecycleAfterMaxRequests(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 2, "serve", func(c *Config) { c.MaxRequests = 20 })
	before := h.waitServing(2)
	u := h.view(1).Upstream
	for range 22 { // 20 plus at most 10% jitter
		if !u.Acquire() {
			break // out of rotation once its replacement is starting
		}
		u.Release(200)
	}
	h.waitFor(20*time.Second, "worker 1 recycled", func() bool {
		now := h.serving()
		return now[1] != 0 && now[1] != before[1]
	})
	if v := h.view(1); v.Restarts != 1 || v.Cause != CauseMaxRequests {
		t.Fatalf("worker 1: %+v", v)
	}
	if h.sup.Restarts()[CauseMaxRequests] != 1 || h.serving()[2] != before[2] {
		t.Fatalf("restarts %v; serving %v, was %v", h.sup.Restarts(), h.serving(), before)
	}
}

// MAX_MEMORY_RESTART_MB: a worker that grows past the limit is replaced,
// replacement first, and the old one stops.
func TestRecycleAboveMemoryLimit(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1, "grow", func(c *Config) { c.MaxMemoryMB = 200 })
	before := h.waitServing(1)
	h.waitFor(30*time.Second, "a memory recycle", func() bool { return h.sup.Restarts()[CauseMemory] > 0 })
	if v := h.view(1); v.Cause != CauseMemory || v.Upstream.PID == before[1] {
		t.Fatalf("worker 1 after a memory recycle: %+v", v)
	}
	h.waitFor(20*time.Second, "the grown worker stopped", func() bool { return !alive(before[1]) })
	if h.logged("recycling worker") == 0 {
		t.Fatal("recycle not logged")
	}
}

// Shutdown stops every worker and removes the socket directory; commands
// after it are refused.
func TestShutdownStopsEverything(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 2, "serve")
	pids := h.waitServing(2)
	h.shutdown(5 * time.Second)
	for _, pid := range pids {
		if alive(pid) {
			t.Fatalf("worker %d still runs", pid)
		}
	}
	if err := h.sup.Scale(context.Background(), 3); !errors.Is(err, ErrStopping) {
		t.Fatalf("scale after shutdown: %v", err)
	}
	if err := h.sup.Reload(context.Background()); !errors.Is(err, ErrStopping) {
		t.Fatalf("reload after shutdown: %v", err)
	}
	if h.logged("worker stopped by SIGTERM")+h.logged("worker exited") < 2 {
		t.Fatalf("workers not stopped by SIGTERM:\n%s", h.log)
	}
}
