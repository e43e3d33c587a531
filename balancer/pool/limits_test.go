package pool

import (
	"bytes"
	"context"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/procbal/procbal/shared/protocol"
)

// MAX_REQUESTS was polled every 250ms: the request that reaches the limit
// must signal it, once, and without blocking when nobody listens.
func TestWatchRequestsSignalsTheCrossingOnce(t *testing.T) {
	u := testUpstreams(Healthy)[0]
	sig := make(chan *Upstream, 4)
	u.WatchRequests(3, sig)
	for i := range 10 {
		u.Acquire()
		u.Release(200)
		if want := i >= 2; (len(sig) == 1) != want {
			t.Fatalf("after %d requests: %d signals, want %v", i+1, len(sig), want)
		}
	}
	if got := <-sig; got != u {
		t.Fatalf("signalled %p, want %p", got, u)
	}

	full := testUpstreams(Healthy)[0]
	full.WatchRequests(1, make(chan *Upstream)) // nobody receives
	done := make(chan struct{})
	go func() { full.Acquire(); full.Release(200); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("Release blocked on a signal nobody receives")
	}
}

func TestWatchRequestsOffWithoutLimit(t *testing.T) {
	u := testUpstreams(Healthy)[0]
	sig := make(chan *Upstream, 1)
	u.WatchRequests(0, sig)
	for range 5 {
		u.Acquire()
		u.Release(200)
	}
	if len(sig) != 0 {
		t.Fatal("a limit of 0 signalled")
	}
}

// A worker past its request limit is out of rotation while another is
// healthy, and still serves when it is the only one left.
func TestPickRecyclingOnlyAsFallback(t *testing.T) {
	p, ups := testPool(&RoundRobin{}, OutlierOptions{}, Recycling, Healthy, Ejected)
	for range 6 {
		u := p.Pick(Tried{})
		if u != ups[1] {
			t.Fatalf("picked %d with a healthy upstream left, want 2", u.ID)
		}
		u.Release(200)
	}
	ups[1].SetState(Unhealthy)
	u := p.Pick(Tried{})
	if u != ups[0] {
		t.Fatalf("no healthy upstream: picked %v, want the recycling one before the ejected one", u)
	}
	if u.Inflight() != 1 {
		t.Fatalf("fallback pick did not count in flight: %d", u.Inflight())
	}
	u.Release(200)
	if got := p.Pick(triedOf(ups, 0)); got != ups[2] {
		t.Fatalf("recycling one tried: picked %v, want the ejected one", got)
	}
}

func TestRecyclingNotAvailable(t *testing.T) {
	u := testUpstreams(Recycling)[0]
	if u.Available() || u.Acquire() || u.Inflight() != 0 {
		t.Fatal("a Recycling upstream is available to selection")
	}
	if Recycling.String() != "recycling" || CrashLoop.String() != "crash_loop" {
		t.Fatalf("state names: %q %q", Recycling, CrashLoop)
	}
}

// bufLog returns a logger writing into a buffer, safe for concurrent use.
func bufLog() (hclog.Logger, func() string) {
	var mu sync.Mutex
	var b bytes.Buffer
	w := writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return b.Write(p)
	})
	log := hclog.New(&hclog.LoggerOptions{Output: w, Level: hclog.Debug})
	return log, func() string {
		mu.Lock()
		defer mu.Unlock()
		return b.String()
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// The "not ejecting" warning was logged on every failed request past the
// threshold; once per change of the verdict is enough.
func TestNotEjectingWarnedOncePerChange(t *testing.T) {
	log, out := bufLog()
	p := New(&RoundRobin{}, OutlierOptions{Consecutive: 2}, log)
	ups := testUpstreams(Healthy)
	p.Publish(ups)
	for range 50 {
		p.ReportFailure(ups[0])
	}
	const msg = "not ejecting"
	if n := strings.Count(out(), msg); n != 1 {
		t.Fatalf("%d warnings for 50 failures of the only upstream, want 1:\n%s", n, out())
	}

	// Two more healthy upstreams: the next ejection is allowed, so the
	// verdict changed; when it is refused again, it is warned about again.
	more := append(ups, testUpstreams(Healthy, Healthy)...)
	p.Publish(more)
	p.ReportFailure(more[0])
	p.ReportFailure(more[0])
	if more[0].State() != Ejected {
		t.Fatalf("state %v, want ejected", more[0].State())
	}
	for range 10 {
		p.ReportFailure(more[1])
	}
	if n := strings.Count(out(), msg); n != 2 {
		t.Fatalf("%d warnings, want 2 (once per change):\n%s", n, out())
	}
}

// A worker was sampled the moment it was spawned, before it had any RSS
// to speak of, and that near-zero sample was logged and reported.
func TestNoMemorySampleBeforeReady(t *testing.T) {
	hs := startHealthServer(t)
	hs.mode.Store(answer500) // starting, not yet healthy
	var samples atomic.Int32
	var first atomic.Pointer[protocol.MemoryReport]
	c := NewChecker(CheckOptions{
		Path: "/healthz", Interval: 20 * time.Millisecond, Timeout: 50 * time.Millisecond,
		UnhealthyThreshold: 2, HealthyThreshold: 1, StartProbe: 10 * time.Millisecond,
		MemoryInterval: time.Hour,
	}, Hooks{Memory: func(_ *Upstream, m *protocol.MemoryReport) {
		first.CompareAndSwap(nil, m)
		samples.Add(1)
	}}, hclog.NewNullLogger())
	u := NewUpstream(1, Local, hs.addr)
	u.PID = os.Getpid()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.Watch(ctx, u) }()
	t.Cleanup(func() { cancel(); <-done })

	time.Sleep(100 * time.Millisecond)
	if n := samples.Load(); n != 0 || u.Memory() != nil {
		t.Fatalf("%d memory samples while starting, want none until ready", n)
	}
	hs.mode.Store(answerOK)
	waitFor(t, 2*time.Second, "a sample once ready", func() bool { return samples.Load() == 1 })
	if m := first.Load(); m.RSSBytes == 0 {
		t.Fatal("first sample has no RSS")
	}
}

// A worker past its request limit still leaves rotation when its probes
// fail, so that its replacement is not all that protects clients.
func TestCheckerRecyclingGoesUnhealthy(t *testing.T) {
	hs := startHealthServer(t)
	var hc hookCounts
	u := NewUpstream(1, Local, hs.addr)
	watch(t, testChecker(&hc, 2, 2), u)
	waitFor(t, 2*time.Second, "ready", func() bool { return u.State() == Healthy })
	u.SetState(Recycling)
	hs.mode.Store(answer500)
	waitFor(t, 2*time.Second, "unhealthy", func() bool { return u.State() == Unhealthy })
	if hc.unhealthy.Load() != 1 {
		t.Fatalf("Unhealthy hook called %d times, want 1", hc.unhealthy.Load())
	}
}

// The per-request path stays free of allocations, the request that
// signals the limit and the fallback to a Recycling upstream included.
func TestLimitPathAllocs(t *testing.T) {
	p, ups := testPool(&RoundRobin{}, OutlierOptions{}, Recycling, Unhealthy)
	sig := make(chan *Upstream, 1)
	ups[0].WatchRequests(1, sig)
	allocs := testing.AllocsPerRun(1000, func() {
		ups[0].requestLimit.Store(ups[0].Requests() + 1) // every request reaches it
		u := p.Pick(Tried{})
		u.Release(200)
		<-sig
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per request, want 0", allocs)
	}
}
