package pool

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Issue 11: a remote upstream never healthy is Starting only for
// RemoteStartTimeout, then Unhealthy with one warning naming it and the
// last probe's error, which LastCheck reports; it joins rotation once it
// answers. A local worker is left to the supervisor.
func TestRemoteStartTimeout(t *testing.T) {
	t.Parallel()
	hs := startHealthServer(t)
	hs.mode.Store(answer500)
	var logs lockedBuffer
	c := NewChecker(CheckOptions{Path: "/healthz", Interval: 50 * time.Millisecond, Timeout: time.Second,
		UnhealthyThreshold: 3, HealthyThreshold: 2, RemoteStartTimeout: 300 * time.Millisecond},
		Hooks{}, hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Info}))
	remote, local := NewUpstream(1001, Remote, hs.addr), NewUpstream(1, Local, hs.addr)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go c.Watch(ctx, remote)
	go c.Watch(ctx, local)
	time.Sleep(150 * time.Millisecond)
	if remote.State() != Starting {
		t.Fatalf("remote %s before its start timeout", remote.State())
	}
	if at, why := remote.LastCheck(); at.IsZero() || why != "status 500 from /healthz" {
		t.Fatalf("LastCheck = %v, %q", at, why)
	}
	deadline := time.Now().Add(5 * time.Second)
	for remote.State() != Unhealthy && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if s := remote.State(); s != Unhealthy || time.Since(remote.StartedAt) > 2*time.Second {
		t.Fatalf("remote %s after %s", s, time.Since(remote.StartedAt))
	}
	time.Sleep(200 * time.Millisecond)
	out := logs.String()
	if n := strings.Count(out, "not healthy within the start timeout"); n != 1 || !strings.Contains(out, hs.addr) ||
		!strings.Contains(out, "status 500") {
		t.Fatalf("%d warnings, want one naming the upstream and its error:\n%s", n, out)
	}
	if local.State() != Starting {
		t.Fatalf("a local worker is %s: the supervisor bounds its start", local.State())
	}
	hs.mode.Store(answerOK)
	for remote.State() != Healthy && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if at, why := remote.LastCheck(); remote.State() != Healthy || why != "" || time.Since(at) > time.Second {
		t.Fatalf("after answering: %s, LastCheck %v %q", remote.State(), at, why)
	}
}
