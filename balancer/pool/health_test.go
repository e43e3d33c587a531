package pool

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/valyala/fasthttp"
)

// Health server modes.
const (
	answerOK int32 = iota
	answer500
	answerHang
)

// healthServer is a real fasthttp server on a unix socket whose /healthz
// answer the test flips.
type healthServer struct {
	addr  string // "unix:/path"
	mode  atomic.Int32
	probe atomic.Int64 // /healthz requests
	oks   atomic.Int64 // 200 answers
	fails atomic.Int64 // 500 or hung answers
}

func startHealthServer(t *testing.T) *healthServer {
	t.Helper()
	dir, err := os.MkdirTemp("", "pt")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "h.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	hs := &healthServer{addr: "unix:" + sock}
	srv := &fasthttp.Server{Handler: hs.serve, CloseOnShutdown: true}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		hs.mode.Store(answerOK) // release hung handlers
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.ShutdownWithContext(ctx)
		_ = os.RemoveAll(dir)
	})
	return hs
}

func (hs *healthServer) serve(ctx *fasthttp.RequestCtx) {
	if string(ctx.Path()) != "/healthz" {
		ctx.SetStatusCode(fasthttp.StatusNotFound)
		return
	}
	hs.probe.Add(1)
	switch hs.mode.Load() {
	case answerOK:
		hs.oks.Add(1)
		ctx.SetBodyString("ok")
	case answer500:
		hs.fails.Add(1)
		ctx.SetStatusCode(fasthttp.StatusInternalServerError)
	case answerHang:
		hs.fails.Add(1)
		// Far longer than the probe timeout, but let go when the mode
		// changes, so a recovered upstream answers the next probe.
		deadline := time.Now().Add(2 * time.Second)
		for hs.mode.Load() == answerHang && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
	}
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

type hookCounts struct {
	ready, unhealthy atomic.Int32
	onReady          func() // optional, runs inside the Ready hook
}

func testChecker(hc *hookCounts, healthy, unhealthy int) *Checker {
	return NewChecker(CheckOptions{
		Path:               "/healthz",
		Interval:           20 * time.Millisecond,
		Timeout:            50 * time.Millisecond,
		UnhealthyThreshold: unhealthy,
		HealthyThreshold:   healthy,
		StartProbe:         10 * time.Millisecond,
		MemoryInterval:     time.Hour,
	}, Hooks{
		Ready: func(*Upstream) {
			hc.ready.Add(1)
			if hc.onReady != nil {
				hc.onReady()
			}
		},
		Unhealthy: func(*Upstream) { hc.unhealthy.Add(1) },
	}, hclog.NewNullLogger())
}

// watch runs c.Watch(u) until the test ends, and waits for it to return.
func watch(t *testing.T, c *Checker, u *Upstream) <-chan struct{} {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Watch(ctx, u)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return done
}

func TestCheckerStartingToHealthy(t *testing.T) {
	hs := startHealthServer(t)
	hs.mode.Store(answer500)
	var okAtReady atomic.Int64
	hc := hookCounts{onReady: func() { okAtReady.Store(hs.oks.Load()) }}
	u := NewUpstream(1, Local, hs.addr)
	watch(t, testChecker(&hc, 2, 2), u)

	// Failing probes keep a starting worker out, but do not mark it unhealthy.
	waitFor(t, 2*time.Second, "failed start probes", func() bool { return hs.fails.Load() >= 4 })
	if s := u.State(); s != Starting || hc.ready.Load() != 0 || hc.unhealthy.Load() != 0 {
		t.Fatalf("after failed start probes: %v, ready %d, unhealthy %d; want starting, 0, 0",
			s, hc.ready.Load(), hc.unhealthy.Load())
	}

	hs.mode.Store(answerOK)
	waitFor(t, 2*time.Second, "healthy", func() bool { return u.State() == Healthy })
	if n := okAtReady.Load(); n != 1 {
		t.Errorf("healthy after %d good probes, want the first one", n)
	}
	// More good probes change nothing and call no hook again.
	waitFor(t, 2*time.Second, "more probes", func() bool { return hs.oks.Load() >= 5 })
	if u.State() != Healthy || hc.ready.Load() != 1 || hc.unhealthy.Load() != 0 {
		t.Errorf("later: %v, ready %d, unhealthy %d; want healthy, 1, 0",
			u.State(), hc.ready.Load(), hc.unhealthy.Load())
	}
}

func TestCheckerFlips(t *testing.T) {
	tests := []struct {
		name      string
		mode      int32
		unhealthy int
		healthy   int
	}{
		{"500", answer500, 3, 2},
		{"hang", answerHang, 2, 3},
		{"threshold 1", answer500, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hs := startHealthServer(t)
			var hc hookCounts
			u := NewUpstream(1, Local, hs.addr)
			watch(t, testChecker(&hc, tt.healthy, tt.unhealthy), u)
			waitFor(t, 2*time.Second, "ready", func() bool { return u.State() == Healthy })

			for round := 1; round <= 2; round++ {
				failsBefore := hs.fails.Load()
				hs.mode.Store(tt.mode)
				waitFor(t, 3*time.Second, "unhealthy", func() bool { return u.State() == Unhealthy })
				// A hung probe counts when it times out, before the server
				// sees it end, so count probes the server received.
				if n := hs.fails.Load() - failsBefore; n < int64(tt.unhealthy) {
					t.Errorf("round %d: unhealthy after %d failed probes, want >= %d", round, n, tt.unhealthy)
				}
				if got := hc.unhealthy.Load(); got != int32(round) {
					t.Errorf("round %d: Unhealthy hook called %d times, want %d", round, got, round)
				}

				oksBefore := hs.oks.Load()
				hs.mode.Store(answerOK)
				waitFor(t, 3*time.Second, "healthy again", func() bool { return u.State() == Healthy })
				if n := hs.oks.Load() - oksBefore; n < int64(tt.healthy) {
					t.Errorf("round %d: healthy after %d good probes, want >= %d", round, n, tt.healthy)
				}
			}
			if hc.ready.Load() != 1 || hc.unhealthy.Load() != 2 {
				t.Errorf("hooks: ready %d unhealthy %d, want 1, 2", hc.ready.Load(), hc.unhealthy.Load())
			}
		})
	}
}

// A single failed probe under the threshold leaves the upstream in.
func TestCheckerToleratesBlip(t *testing.T) {
	hs := startHealthServer(t)
	var hc hookCounts
	u := NewUpstream(1, Local, hs.addr)
	watch(t, testChecker(&hc, 2, 3), u)
	waitFor(t, 2*time.Second, "ready", func() bool { return u.State() == Healthy })
	for range 3 {
		hs.mode.Store(answer500)
		before := hs.fails.Load()
		waitFor(t, 2*time.Second, "one failed probe", func() bool { return hs.fails.Load() > before })
		hs.mode.Store(answerOK)
		ok := hs.oks.Load()
		waitFor(t, 2*time.Second, "a good probe", func() bool { return hs.oks.Load() > ok })
		if u.State() != Healthy {
			t.Fatalf("state %v after one failed probe, want healthy", u.State())
		}
	}
	if hc.unhealthy.Load() != 0 {
		t.Errorf("Unhealthy hook called %d times", hc.unhealthy.Load())
	}
}

func TestCheckerDeadUpstream(t *testing.T) {
	var hc hookCounts
	dir := t.TempDir()
	u := NewUpstream(1, Remote, "unix:"+filepath.Join(dir, "none.sock"))
	u.SetState(Healthy)
	watch(t, testChecker(&hc, 2, 2), u)
	waitFor(t, 2*time.Second, "unhealthy", func() bool { return u.State() == Unhealthy })
	if hc.unhealthy.Load() != 1 {
		t.Errorf("Unhealthy hook called %d times, want 1", hc.unhealthy.Load())
	}
}

// A passive ejection ends when its time is up and the probes pass.
func TestCheckerReadmitsEjected(t *testing.T) {
	hs := startHealthServer(t)
	var hc hookCounts
	p := New(&RoundRobin{}, OutlierOptions{Consecutive: 1, BaseEjection: 150 * time.Millisecond}, hclog.NewNullLogger())
	u := NewUpstream(1, Local, hs.addr)
	p.Publish([]*Upstream{u, testUpstreams(Healthy)[0], testUpstreams(Healthy)[0]})
	u.SetState(Healthy)
	ejectedAt := time.Now()
	p.ReportFailure(u)
	if u.State() != Ejected {
		t.Fatalf("state %v, want ejected", u.State())
	}
	watch(t, testChecker(&hc, 2, 2), u)
	waitFor(t, 2*time.Second, "readmission", func() bool { return u.State() == Healthy })
	if d := time.Since(ejectedAt); d < 150*time.Millisecond {
		t.Errorf("readmitted after %v, before the ejection ended", d)
	}
	if hc.ready.Load() != 0 || hc.unhealthy.Load() != 0 {
		t.Errorf("hooks: ready %d unhealthy %d, want 0, 0", hc.ready.Load(), hc.unhealthy.Load())
	}
}

// An ejected upstream whose probes fail too becomes unhealthy, so the
// supervisor replaces it.
func TestCheckerEjectedAndFailing(t *testing.T) {
	hs := startHealthServer(t)
	hs.mode.Store(answer500)
	var hc hookCounts
	p := New(&RoundRobin{}, OutlierOptions{Consecutive: 1, BaseEjection: time.Minute}, hclog.NewNullLogger())
	u := NewUpstream(1, Local, hs.addr)
	p.Publish([]*Upstream{u, testUpstreams(Healthy)[0], testUpstreams(Healthy)[0]})
	u.SetState(Healthy)
	p.ReportFailure(u)
	watch(t, testChecker(&hc, 2, 2), u)
	waitFor(t, 2*time.Second, "unhealthy", func() bool { return u.State() == Unhealthy })
	if hc.unhealthy.Load() != 1 {
		t.Errorf("Unhealthy hook called %d times, want 1", hc.unhealthy.Load())
	}
}

func TestCheckerSkipsDrainingAndStopsOnStopped(t *testing.T) {
	hs := startHealthServer(t)
	var hc hookCounts
	u := NewUpstream(1, Local, hs.addr)
	done := watch(t, testChecker(&hc, 2, 2), u)
	waitFor(t, 2*time.Second, "ready", func() bool { return u.State() == Healthy })

	u.SetState(Draining)
	hs.mode.Store(answer500)
	time.Sleep(100 * time.Millisecond) // 5 intervals: no probe may happen
	if n := hs.fails.Load(); n != 0 || u.State() != Draining {
		t.Errorf("draining: %d probes, state %v; want 0, draining", n, u.State())
	}

	u.SetState(Stopped)
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("Watch did not return for a stopped upstream")
	}
}
