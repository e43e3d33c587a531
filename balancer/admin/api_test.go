package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/procbal/procbal/balancer/admin"
	"github.com/procbal/procbal/balancer/pool"
	"github.com/procbal/procbal/balancer/supervisor"
	"github.com/procbal/procbal/shared/protocol"
)

// fakeSupervisor answers the admin API as the supervisor would, with the
// views and the error a test sets, and records the commands it gets.
type fakeSupervisor struct {
	views    []supervisor.WorkerView
	active   int
	err      error
	restarts map[string]uint64

	mu     sync.Mutex
	scaled []int
	waited []time.Duration // how long each command's context allowed
}

var _ admin.Supervisor = (*fakeSupervisor)(nil)

func (f *fakeSupervisor) Workers() []supervisor.WorkerView { return f.views }
func (f *fakeSupervisor) Active() int                      { return f.active }
func (f *fakeSupervisor) Restarts() map[string]uint64      { return f.restarts }

func (f *fakeSupervisor) Scale(ctx context.Context, n int) error {
	f.record(ctx)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.scaled = append(f.scaled, n)
	return f.err
}

func (f *fakeSupervisor) Reload(ctx context.Context) error {
	f.record(ctx)
	return f.err
}

func (f *fakeSupervisor) record(ctx context.Context) {
	d, _ := ctx.Deadline()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.waited = append(f.waited, time.Until(d))
}

const opTimeout = 2 * time.Second

// fakeAPI returns the admin handler over sup and a pool holding ups.
func fakeAPI(sup admin.Supervisor, allowZero bool, ups ...*pool.Upstream) http.Handler {
	sel, _ := pool.NewSelector("round_robin")
	p := pool.New(sel, pool.OutlierOptions{}, hclog.NewNullLogger())
	p.Publish(ups)
	return admin.New(admin.Options{
		Strategy: "least_conn", Pool: p, Supervisor: sup, Log: hclog.NewNullLogger(),
		WorkerLimit: 8, AllowZero: allowZero, OpTimeout: opTimeout,
	})
}

// jsonBody decodes a JSON answer, failing the test if it is not JSON.
func jsonBody(t *testing.T, what string, code int, body []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("%s: %d %q is not JSON: %v", what, code, body, err)
	}
	return m
}

// Each error of a scale maps to its status, with a JSON error that says
// why: 422 beyond what DB_MAX_CONNS can share, 409 while another operation
// runs, 503 in shutdown, 504 when the wait ran out, 500 for anything else.
func TestScaleAnswers(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err    error
		status int
	}{
		{nil, 200}, {supervisor.ErrBusy, 409}, {supervisor.ErrStopping, 503},
		{context.DeadlineExceeded, 504}, {errors.New("boom"), 500},
		{fmt.Errorf("%w for 3 local workers: ...", supervisor.ErrDBBudget), 422},
	} {
		sup := &fakeSupervisor{active: 2, err: tc.err}
		w := req{method: "POST", path: "/admin/scale", host: "localhost", body: `{"workers": 3}`}.do(fakeAPI(sup, false))
		body := jsonBody(t, fmt.Sprint(tc.err), w.Code, w.Body.Bytes())
		if w.Code != tc.status || len(sup.scaled) != 1 || sup.scaled[0] != 3 {
			t.Fatalf("scale with %v: %d %v, scaled %v; want %d", tc.err, w.Code, body, sup.scaled, tc.status)
		}
		if tc.err == nil && (body["workers"] != 3.0 || body["previous"] != 2.0) {
			t.Fatalf("scale answer %v, want workers 3, previous 2", body)
		}
		if tc.err != nil && body["error"] != tc.err.Error() {
			t.Fatalf("scale with %v answered %v", tc.err, body)
		}
		if sup.waited[0] > opTimeout || sup.waited[0] < opTimeout/2 {
			t.Fatalf("scale waited with %s left, want OpTimeout %s", sup.waited[0], opTimeout)
		}
	}
}

// A bad scale body is refused before the supervisor hears of it.
func TestScaleRefusesBadBodies(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		body      string
		allowZero bool
		status    int
	}{
		{`{"workers":`, false, 400}, {`"3"`, false, 400}, {`{"workers":"3"}`, false, 400},
		{`{"workers":2.5}`, false, 400}, {``, false, 400}, {`{"workers":3}{"workers":4}`, false, 400},
		{`{"count":3}`, false, 400}, {`[3]`, false, 400}, {`{"workers":null}`, false, 400},
		{`{"workers":-1}`, false, 422}, {`{"workers":0}`, false, 422}, {`{"workers":9}`, false, 422},
		{`{"workers":1e9}`, false, 422}, {`{"workers":-1}`, true, 422},
		{`{"workers":"` + strings.Repeat("x", 8<<10) + `"}`, false, 413},
	} {
		sup := &fakeSupervisor{}
		w := req{method: "POST", path: "/admin/scale", host: "localhost", body: tc.body}.do(fakeAPI(sup, tc.allowZero))
		name := tc.body[:min(len(tc.body), 30)]
		body := jsonBody(t, name, w.Code, w.Body.Bytes())
		if w.Code != tc.status || body["error"] == nil || len(sup.scaled) != 0 {
			t.Fatalf("scale %q (zero allowed: %v): %d %v, scaled %v; want %d", name, tc.allowZero, w.Code, body, sup.scaled, tc.status)
		}
	}
	sup := &fakeSupervisor{}
	w := req{method: "POST", path: "/admin/scale", host: "localhost", body: `{"workers":0}`}.do(fakeAPI(sup, true))
	if w.Code != 200 || len(sup.scaled) != 1 || sup.scaled[0] != 0 {
		t.Fatalf("scale to 0 with UPSTREAMS: %d %s, scaled %v", w.Code, w.Body, sup.scaled)
	}
}

// A reload waits OpTimeout for each worker; its failure to get a
// replacement healthy is a 500 that names the worker.
func TestReloadAnswers(t *testing.T) {
	t.Parallel()
	failed := fmt.Errorf("replacing worker 1: %w", errors.New("replacement exited before it was healthy"))
	for _, tc := range []struct {
		err    error
		status int
	}{{nil, 200}, {supervisor.ErrBusy, 409}, {failed, 500}, {supervisor.ErrStopping, 503}} {
		sup := &fakeSupervisor{active: 3, err: tc.err}
		w := req{method: "POST", path: "/admin/reload", host: "localhost"}.do(fakeAPI(sup, false))
		body := jsonBody(t, fmt.Sprint(tc.err), w.Code, w.Body.Bytes())
		if w.Code != tc.status {
			t.Fatalf("reload with %v: %d %v, want %d", tc.err, w.Code, body, tc.status)
		}
		if tc.err == nil && body["reloaded"] != 3.0 || tc.err != nil && body["error"] != tc.err.Error() {
			t.Fatalf("reload with %v answered %v", tc.err, body)
		}
		if left := sup.waited[0]; left > 3*opTimeout || left <= 2*opTimeout {
			t.Fatalf("reload of 3 waited with %s left, want 3 x OpTimeout", left)
		}
	}
}

// upstream returns an upstream in state s that served requests.
func upstream(id int, kind pool.Kind, s pool.State, requests int, m *protocol.MemoryReport) *pool.Upstream {
	u := pool.NewUpstream(id, kind, fmt.Sprintf("unix:/w%d.sock", id))
	u.SetState(pool.Healthy)
	for range requests {
		u.Acquire()
		u.Release(200)
	}
	u.SetState(s)
	if m != nil {
		u.SetMemory(m)
	}
	return u
}

// /admin/workers reports each slot from the supervisor's view: a retiring
// slot as draining, a crash looping one as crash_loop with its last exit,
// runtime memory only for kit workers; the totals are the sums.
func TestWorkersReport(t *testing.T) {
	t.Parallel()
	kit := &protocol.MemoryReport{RSSBytes: 30 << 20, HeapAllocBytes: 5 << 20, HeapSysBytes: 9 << 20, Goroutines: 7, ReportedAt: time.Now()}
	plain := &protocol.MemoryReport{RSSBytes: 10 << 20, ReportedAt: time.Now()}
	sup := &fakeSupervisor{views: []supervisor.WorkerView{
		{ID: 1, Upstream: upstream(1, pool.Local, pool.Healthy, 4, kit), Restarts: 2, Cause: supervisor.CauseReload},
		{ID: 2, Upstream: upstream(2, pool.Local, pool.Healthy, 1, plain), Retiring: true},
		{ID: 3, Upstream: upstream(3, pool.Local, pool.Stopped, 0, nil), CrashLoop: true, Restarts: 5,
			Cause: supervisor.CauseCrash, LastExit: "exit status 3", LastOutput: "cannot boot"},
		{ID: 4, Upstream: upstream(4, pool.Local, pool.Stopped, 0, nil), Retiring: true},
		{ID: 1001, Upstream: upstream(1001, pool.Remote, pool.Healthy, 2, nil)},
	}}
	w := req{method: "GET", path: "/admin/workers", host: "localhost"}.do(fakeAPI(sup, false))
	var r admin.Report
	if err := json.Unmarshal(w.Body.Bytes(), &r); err != nil || w.Code != 200 {
		t.Fatalf("%d %s: %v", w.Code, w.Body, err)
	}
	states := []string{}
	for _, wk := range r.Workers {
		states = append(states, wk.State)
	}
	if strings.Join(states, ",") != "healthy,draining,crash_loop,stopped,healthy" {
		t.Fatalf("states %v", states)
	}
	w1, w3 := r.Workers[0], r.Workers[2]
	if w1.Restarts != 2 || w1.RestartCause != "reload" || w1.Requests != 4 || w1.Memory.Goroutines == nil || *w1.Memory.HeapAllocBytes != 5<<20 {
		t.Fatalf("worker 1 %+v", w1)
	}
	if w3.LastExit != "exit status 3" || w3.LastOutput != "cannot boot" || w3.Restarts != 5 {
		t.Fatalf("crash looping worker %+v", w3)
	}
	if m := r.Workers[1].Memory; m.RSSBytes != 10<<20 || m.HeapAllocBytes != nil || m.Goroutines != nil {
		t.Fatalf("non-kit memory %+v, want RSS only", m)
	}
	if r.Workers[4].Kind != pool.Remote || r.Strategy != "least_conn" {
		t.Fatalf("remote %+v, strategy %q", r.Workers[4], r.Strategy)
	}
	want := admin.Totals{Workers: 5, Healthy: 2, RSSBytes: 40 << 20, HeapAllocBytes: 5 << 20, Requests: 7}
	if r.Totals != want || r.Balancer.PID != os.Getpid() || r.Balancer.RSSBytes == 0 {
		t.Fatalf("totals %+v (want %+v), balancer %+v", r.Totals, want, r.Balancer)
	}
}

// /admin/health is 200 while any upstream takes requests, else 503.
func TestHealthAnswers(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		state  pool.State
		status int
	}{{pool.Healthy, 200}, {pool.Draining, 503}, {pool.Starting, 503}} {
		w := req{method: "GET", path: "/admin/health", host: "localhost"}.do(fakeAPI(&fakeSupervisor{}, false, upstream(1, pool.Local, tc.state, 0, nil)))
		body := jsonBody(t, tc.state.String(), w.Code, w.Body.Bytes())
		if w.Code != tc.status || body["healthy"] != (tc.status == 200) {
			t.Fatalf("health with a %s upstream: %d %v, want %d", tc.state, w.Code, body, tc.status)
		}
	}
}

// Each admin path takes one method (405 with Allow otherwise); unknown
// paths are 404; every answer is JSON.
func TestMethodsAndPaths(t *testing.T) {
	t.Parallel()
	h := fakeAPI(&fakeSupervisor{}, false)
	for _, tc := range []struct {
		method, path string
		status       int
		allow        string
	}{
		{"GET", "/admin/scale", 405, "POST"}, {"GET", "/admin/reload", 405, "POST"},
		{"POST", "/admin/workers", 405, "GET"}, {"DELETE", "/admin/health", 405, "GET"},
		{"GET", "/admin/nope", 404, ""}, {"GET", "/", 404, ""},
	} {
		w := req{method: tc.method, path: tc.path, host: "localhost"}.do(h)
		jsonBody(t, tc.path, w.Code, w.Body.Bytes())
		if w.Code != tc.status || w.Header().Get("Allow") != tc.allow {
			t.Fatalf("%s %s: %d Allow %q, want %d %q", tc.method, tc.path, w.Code, w.Header().Get("Allow"), tc.status, tc.allow)
		}
	}
}
