package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// fakeBalancer imitates the admin API and the proxied /api/health: scale
// and reload take effect at once, every worker healthy.
type fakeBalancer struct {
	mu      sync.Mutex
	pids    []int
	nextPID int
	fail    bool // answer /api/health with 502
}

func (f *fakeBalancer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch r.URL.Path {
	case "/api/health":
		if f.fail {
			w.WriteHeader(http.StatusBadGateway)
		}
		fmt.Fprintf(w, `{"status":"ok","pid":%d}`, f.pids[0])
	case "/admin/workers":
		var ws []map[string]any
		for i, pid := range f.pids {
			ws = append(ws, map[string]any{"id": i + 1, "pid": pid, "state": "healthy"})
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"workers": ws,
			"totals": map[string]int{"workers": len(ws), "healthy": len(ws)}})
	case "/admin/scale":
		var body struct{ Workers int }
		_ = json.NewDecoder(r.Body).Decode(&body)
		for len(f.pids) < body.Workers {
			f.pids = append(f.pids, f.newPID())
		}
		f.pids = f.pids[:body.Workers]
	case "/admin/reload":
		for i := range f.pids {
			f.pids[i] = f.newPID()
		}
	default:
		http.NotFound(w, r)
	}
}

func (f *fakeBalancer) newPID() int { f.nextPID++; return f.nextPID }

// TestScaleAndReloadChecks runs the scale and reload checks against the
// fake and expects them to complete with no failed request.
func TestScaleAndReloadChecks(t *testing.T) {
	f := &fakeBalancer{nextPID: 100}
	f.pids = []int{f.newPID(), f.newPID()}
	srv := httptest.NewServer(f)
	defer srv.Close()
	b := &system{name: sysBalancer, baseURL: srv.URL, adminURL: srv.URL}
	for _, check := range []func(context.Context, *system, *loadGen, int) (time.Duration, string, error){checkScale, checkReload} {
		r := runCheck(context.Background(), b, 2, "check", check)
		if r.err != nil || r.failed != 0 || r.requests == 0 {
			t.Errorf("result = %+v, want completed with requests and no failures", r)
		}
	}
	if len(f.pids) != 2 || f.pids[0] <= 104 {
		t.Errorf("pids after scale and reload = %v, want 2 new ones", f.pids)
	}
}

// TestLoadCountsFailures checks that non-200 answers count as failed and
// make the verdict an error.
func TestLoadCountsFailures(t *testing.T) {
	f := &fakeBalancer{pids: []int{7}, fail: true}
	srv := httptest.NewServer(f)
	defer srv.Close()
	b := &system{name: sysBalancer, baseURL: srv.URL, adminURL: srv.URL}
	r := runCheck(context.Background(), b, 1, "check", checkReload)
	if r.failed == 0 || r.failed != r.requests {
		t.Errorf("failed %d of %d, want all", r.failed, r.requests)
	}
	if failureVerdict([]eventResult{r}) == nil {
		t.Error("verdict: want an error for failed requests")
	}
}
