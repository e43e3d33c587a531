//go:build linux

package proxy_test

import (
	"context"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/procbal/procbal/balancer/pool"
	"github.com/procbal/procbal/balancer/proxy"
)

// recordingObserver keeps every observation as "upstream-id:status".
type recordingObserver struct {
	mu  sync.Mutex
	got []string
}

func (o *recordingObserver) Observe(u *pool.Upstream, status int, d time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.got = append(o.got, strconv.Itoa(u.ID)+":"+strconv.Itoa(status))
}

func (o *recordingObserver) all() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.got...)
}

func startObservedFront(t *testing.T, p *pool.Pool, obs proxy.Observer) string {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := proxy.NewEngine(p, obs, failOnError(t), testEngineOptions)
	go func() { _ = e.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_ = e.ShutdownWithContext(ctx)
	})
	return ln.Addr().String()
}

// Issue 9: every attempt gets one latency observation, failed and retried
// ones included.
func TestEveryAttemptObserved(t *testing.T) {
	t.Parallel()
	cl := startCloser(t)
	good := startBackend(t, func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("ok") })
	p, _ := newPool(t, deadAddr(t), cl.addr, good.addr)
	obs := &recordingObserver{}
	front := startObservedFront(t, p, obs)
	c, br := dialFront(t, front)
	_, _ = io.WriteString(c, "GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
	if resp, body := readResp(t, br, "GET"); resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
	waitObserved(t, obs, 3)
	if got, want := obs.all(), []string{"1:0", "2:0", "3:200"}; !equal(got, want) {
		t.Fatalf("observations %v, want %v (dial failure, closed, answered)", got, want)
	}
}

// A request whose streamed body turns out malformed ends its attempt with
// one observation, not held against the upstream.
func TestAbortedAttemptObserved(t *testing.T) {
	t.Parallel()
	b := startBackend(t, func(ctx *fasthttp.RequestCtx) {})
	p, ups := newPool(t, b.addr)
	obs := &recordingObserver{}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o := testEngineOptions
	o.StreamRequests = true
	e := proxy.NewEngine(p, obs, failOnError(t), o)
	go func() { _ = e.Serve(ln) }()
	t.Cleanup(func() { _ = e.ShutdownWithContext(context.Background()) })
	c, br := dialFront(t, ln.Addr().String())
	_, _ = io.WriteString(c, "POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
	waitInflight(t, ups[0], 1)
	_, _ = io.WriteString(c, "zz\r\n")
	if resp, _ := readResp(t, br, "POST"); resp.StatusCode != 400 {
		t.Fatalf("status %d, want 400", resp.StatusCode)
	}
	waitObserved(t, obs, 1)
	if got := obs.all(); !equal(got, []string{"1:0"}) || ups[0].Failures() != 0 || ups[0].Inflight() != 0 {
		t.Fatalf("observations %v, failures %d, in flight %d", got, ups[0].Failures(), ups[0].Inflight())
	}
}

func waitObserved(t *testing.T, obs *recordingObserver, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for len(obs.all()) < n {
		if time.Now().After(deadline) {
			t.Fatalf("observations %v, want %d", obs.all(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // no more come
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
