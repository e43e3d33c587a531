package admin_test

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/procbal/procbal/balancer/admin"
	"github.com/procbal/procbal/balancer/pool"
	"github.com/procbal/procbal/balancer/supervisor"
	"github.com/procbal/procbal/shared/protocol"
)

// /metrics sums a slot's processes under one label, counts answers by
// status class (0xx: no answer), and reports restarts, memory and client
// connections.
func TestMetricsExposition(t *testing.T) {
	t.Parallel()
	old, cur := upstream(1, pool.Local, pool.Draining, 2, nil), upstream(1, pool.Local, pool.Healthy, 3, nil)
	cur.SetMemory(&protocol.MemoryReport{RSSBytes: 1234, HeapAllocBytes: 99, HeapSysBytes: 200})
	remote := upstream(1001, pool.Remote, pool.Healthy, 1, nil)
	sel, _ := pool.NewSelector("round_robin")
	p := pool.New(sel, pool.OutlierOptions{}, hclog.NewNullLogger())
	p.Publish([]*pool.Upstream{old, cur, remote})
	p.ReportFailure(remote)
	sup := &fakeSupervisor{
		views:    []supervisor.WorkerView{{ID: 1, Upstream: cur}, {ID: 1001, Upstream: remote}},
		restarts: map[string]uint64{supervisor.CauseCrash: 2, supervisor.CauseReload: 0},
	}
	m := admin.NewMetrics(p, sup)
	m.ClientConns = func() int64 { return 7 }
	w := httptest.NewRecorder()
	m.Handler().ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	text := w.Body.String()
	for _, want := range []string{
		`balancer_requests_total{class="2xx",upstream="worker-1"} 5`,
		`balancer_requests_total{class="0xx",upstream="unix:/w1001.sock"} 1`,
		`balancer_healthy_upstreams 2`, `balancer_inflight_requests 0`,
		`balancer_worker_restarts_total{cause="crash"} 2`, `balancer_worker_restarts_total{cause="reload"} 0`,
		`balancer_worker_rss_bytes{worker_id="1"} 1234`, `balancer_worker_heap_alloc_bytes{worker_id="1"} 99`,
		`balancer_client_connections 7`, `balancer_ejections_total{upstream="worker-1"} 0`, "balancer_rss_bytes ",
	} {
		if !strings.Contains(text, want) {
			t.Fatalf("/metrics lacks %s:\n%s", want, text)
		}
	}
}
