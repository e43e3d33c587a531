package main

import (
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/procbal/procbal/balancer/admin"
)

// With WORKER_CMD=/bin/false clients hung ~30s before a 503: the client
// listener waited out WORKER_START_TIMEOUT for a first healthy worker.
// Once every worker has failed, clients get 503 with Retry-After at once;
// the slot shows crash_loop with its last exit, and the loop is one error
// line a minute, not one per try.
func TestCrashLoopAnswers503AtOnce(t *testing.T) {
	t.Parallel()
	launched := time.Now()
	b := launch(t, "WORKER_CMD=/bin/false", "MAX_WORKERS=1")
	waitFor(t, 10*time.Second, "the admin listener", b.adminUp)
	quick := &http.Client{Timeout: 5 * time.Second}
	start := time.Now()
	resp, err := quick.Get("http://" + b.addr + "/api/health")
	if err != nil {
		t.Fatalf("request with no worker: %v after %s", err, time.Since(start))
	}
	resp.Body.Close()
	took := time.Since(start)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("request with no worker: %d %v, want 503 with Retry-After", resp.StatusCode, resp.Header)
	}
	if took > time.Second {
		t.Fatalf("503 took %s, want it within 1s", took)
	}

	var w admin.Worker
	waitFor(t, 5*time.Second, "crash_loop in /admin/workers", func() bool {
		ws := b.workers().Workers
		if len(ws) == 0 {
			return false
		}
		w = ws[0]
		return w.State == "crash_loop"
	})
	if w.LastExit != "exit status 1" {
		t.Fatalf("last_exit %q, want \"exit status 1\"", w.LastExit)
	}
	time.Sleep(time.Until(launched.Add(5 * time.Second)))
	out := b.out.String()
	if n := strings.Count(out, "worker crash loop"); n != 1 {
		t.Fatalf("crash loop error logged %d times in ~5s, want once:\n%s", n, grepLines(out, "crash loop"))
	}
	if n := strings.Count(out, "[ERROR]"); n > 2 {
		t.Fatalf("%d error lines in ~5s of a crash loop, want the first failure and the loop:\n%s", n, grepLines(out, "[ERROR]"))
	}
	if !strings.Contains(grepLines(out, "worker crash loop"), `last_exit="exit status 1"`) {
		t.Fatalf("crash loop error lacks the last exit: %s", grepLines(out, "worker crash loop"))
	}
}

// The crash loop shows what the worker last said, in /admin/workers and in
// the error line.
func TestCrashLoopShowsLastOutput(t *testing.T) {
	t.Parallel()
	cmd := script(t, "echo starting; echo 'cannot open config.yml' >&2; exit 3")
	b := launch(t, "WORKER_CMD="+cmd, "MAX_WORKERS=1")
	var w admin.Worker
	waitFor(t, 10*time.Second, "crash_loop in /admin/workers", func() bool {
		if !b.adminUp() {
			return false
		}
		ws := b.workers().Workers
		if len(ws) == 0 {
			return false
		}
		w = ws[0]
		return w.State == "crash_loop"
	})
	if w.LastExit != "exit status 3" || w.LastOutput != "cannot open config.yml" {
		t.Fatalf("last_exit %q, last_output %q; want exit status 3, cannot open config.yml", w.LastExit, w.LastOutput)
	}
	waitFor(t, 5*time.Second, "the crash loop error", func() bool {
		return strings.Contains(grepLines(b.out.String(), "worker crash loop"), `last_output="cannot open config.yml"`)
	})
}

// adminUp reports whether the admin listener accepts connections.
func (b *bal) adminUp() bool {
	c, err := net.Dial("tcp", b.admin)
	if err == nil {
		c.Close()
	}
	return err == nil
}
