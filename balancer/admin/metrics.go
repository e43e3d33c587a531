package admin

import (
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/procbal/procbal/balancer/pool"
	"github.com/procbal/procbal/shared/protocol"
)

// Metrics exposes the balancer in Prometheus's text format. The request
// path touches only the latency histogram (lock-free); everything else is
// read from the upstreams' atomics when /metrics is scraped.
type Metrics struct {
	reg      *prometheus.Registry
	latency  prometheus.Histogram
	pool     *pool.Pool
	sup      Supervisor
	requests *prometheus.Desc
	inflight *prometheus.Desc
	tunnels  *prometheus.Desc
	healthy  *prometheus.Desc
	restarts *prometheus.Desc
	ejection *prometheus.Desc
	rss      *prometheus.Desc
	heap     *prometheus.Desc
	selfRSS  *prometheus.Desc
	clients  *prometheus.Desc

	// ClientConns, when set, reports the open client connections (nginx's
	// "Active connections", HAProxy's current sessions).
	ClientConns func() int64
	// Stats, when set, is told of every attempt too: the dashboard's
	// per-upstream latency.
	Stats *Stats
}

// NewMetrics returns the metrics of p and sup.
func NewMetrics(p *pool.Pool, sup Supervisor) *Metrics {
	m := &Metrics{
		reg:  prometheus.NewRegistry(),
		pool: p,
		sup:  sup,
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "balancer_request_duration_seconds",
			Help:    "Time from sending a request to an upstream to its answer.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}),
		requests: desc("balancer_requests_total", "Requests proxied, by upstream and status class (0xx: no answer).", "upstream", "class"),
		inflight: desc("balancer_inflight_requests", "Requests being proxied now."),
		tunnels:  desc("balancer_open_tunnels", "Open Upgrade (WebSocket) tunnels, by upstream.", "upstream"),
		healthy:  desc("balancer_healthy_upstreams", "Upstreams taking requests now."),
		restarts: desc("balancer_worker_restarts_total", "Worker restarts, by cause.", "cause"),
		ejection: desc("balancer_ejections_total", "Passive ejections of upstreams after consecutive proxy failures.", "upstream"),
		rss:      desc("balancer_worker_rss_bytes", "Resident memory of each local worker.", "worker_id"),
		heap:     desc("balancer_worker_heap_alloc_bytes", "Go heap in use of each worker built on the worker kit.", "worker_id"),
		selfRSS:  desc("balancer_rss_bytes", "Resident memory of the balancer itself."),
		clients:  desc("balancer_client_connections", "Open client connections."),
	}
	m.reg.MustRegister(m.latency, m, collectors.NewGoCollector())
	return m
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

// Observe implements proxy.Observer.
func (m *Metrics) Observe(u *pool.Upstream, status int, d time.Duration) {
	m.latency.Observe(d.Seconds())
	if m.Stats != nil {
		m.Stats.Observe(u, status, d)
	}
}

// Handler serves /metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.requests, m.inflight, m.tunnels, m.healthy, m.restarts, m.ejection, m.rss, m.heap, m.selfRSS, m.clients} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.collectUpstreams(ch)
	for cause, n := range m.sup.Restarts() {
		ch <- prometheus.MustNewConstMetric(m.restarts, prometheus.CounterValue, float64(n), cause)
	}
	for _, v := range m.sup.Workers() {
		mem := v.Upstream.Memory()
		if mem == nil {
			continue
		}
		id := strconv.Itoa(v.ID)
		ch <- prometheus.MustNewConstMetric(m.rss, prometheus.GaugeValue, float64(mem.RSSBytes), id)
		if mem.HeapSysBytes > 0 {
			ch <- prometheus.MustNewConstMetric(m.heap, prometheus.GaugeValue, float64(mem.HeapAllocBytes), id)
		}
	}
	if m.ClientConns != nil {
		ch <- prometheus.MustNewConstMetric(m.clients, prometheus.GaugeValue, float64(m.ClientConns()))
	}
	rss, _ := protocol.ReadRSS(os.Getpid())
	ch <- prometheus.MustNewConstMetric(m.selfRSS, prometheus.GaugeValue, float64(rss))
}

// collectUpstreams sums the counters of every process of each upstream
// (a worker and its replacement share a label), by status class.
func (m *Metrics) collectUpstreams(ch chan<- prometheus.Metric) {
	type key struct {
		up    string
		class int
	}
	reqs, ejects, tunnels := map[key]uint64{}, map[string]uint64{}, map[string]int64{}
	var inflight int64
	healthy := 0
	for _, u := range m.pool.Upstreams() {
		name := upstreamLabel(u)
		for c := 1; c <= 5; c++ {
			reqs[key{name, c}] += u.StatusClass(c)
		}
		reqs[key{name, 0}] += u.Failures()
		ejects[name] += uint64(u.Ejections())
		tunnels[name] += u.Tunnels()
		inflight += u.Inflight()
		if u.Available() {
			healthy++
		}
	}
	for k, n := range reqs {
		ch <- prometheus.MustNewConstMetric(m.requests, prometheus.CounterValue, float64(n), k.up, strconv.Itoa(k.class)+"xx")
	}
	for up, n := range ejects {
		ch <- prometheus.MustNewConstMetric(m.ejection, prometheus.CounterValue, float64(n), up)
	}
	for up, n := range tunnels {
		ch <- prometheus.MustNewConstMetric(m.tunnels, prometheus.GaugeValue, float64(n), up)
	}
	ch <- prometheus.MustNewConstMetric(m.inflight, prometheus.GaugeValue, float64(inflight))
	ch <- prometheus.MustNewConstMetric(m.healthy, prometheus.GaugeValue, float64(healthy))
}

func upstreamLabel(u *pool.Upstream) string {
	if u.Kind == pool.Local {
		return "worker-" + strconv.Itoa(u.ID)
	}
	return u.Address
}
