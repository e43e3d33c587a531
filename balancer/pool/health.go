package pool

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/valyala/fasthttp"

	"github.com/procbal/procbal/shared/protocol"
)

// CheckOptions configures active health checks and memory sampling.
type CheckOptions struct {
	// Path is probed with GET (HEALTH_PATH).
	Path string
	// Interval is the time between probes of a started upstream.
	Interval time.Duration
	// Timeout bounds one probe.
	Timeout time.Duration
	// UnhealthyThreshold failed probes in a row take an upstream out.
	UnhealthyThreshold int
	// HealthyThreshold good probes in a row bring an unhealthy one back.
	HealthyThreshold int
	// StartProbe is the time between probes while an upstream is Starting,
	// so a new worker joins soon after its first healthy answer. The first
	// quickProbes come five times as often, since most workers answer
	// within a few milliseconds and a replacement for a recycled worker
	// should take over as soon as it can. If zero, 25ms.
	StartProbe time.Duration
	// MemoryInterval is the time between memory samples (MEMORY_REPORT_INTERVAL).
	MemoryInterval time.Duration
	// RemoteStartTimeout, when positive, bounds how long a remote upstream
	// that has never been healthy stays Starting (WORKER_START_TIMEOUT):
	// then it is Unhealthy, probed every Interval, with one warning naming
	// it and its last probe's error. Local workers are bounded by the
	// supervisor, which kills them.
	RemoteStartTimeout time.Duration
}

// Hooks are told of the checker's findings. Each may be nil. They run on
// the checker's goroutine and must not block.
type Hooks struct {
	// Ready: a Starting upstream answered its first probe and is Healthy.
	Ready func(u *Upstream)
	// Unhealthy: an upstream failed UnhealthyThreshold probes in a row and
	// is out of rotation.
	Unhealthy func(u *Upstream)
	// Memory: a new memory sample was stored.
	Memory func(u *Upstream, m *protocol.MemoryReport)
}

// Checker probes upstreams and moves them between states.
type Checker struct {
	opts  CheckOptions
	hooks Hooks
	log   hclog.Logger
}

// NewChecker returns a Checker.
func NewChecker(o CheckOptions, h Hooks, log hclog.Logger) *Checker {
	if o.StartProbe <= 0 {
		o.StartProbe = 25 * time.Millisecond
	}
	return &Checker{opts: o, hooks: h, log: log}
}

// probe is one upstream's checking state, owned by its Watch goroutine.
type probe struct {
	u          *Upstream
	hc         *fasthttp.HostClient
	report     *fasthttp.HostClient
	fails, oks int
	lastOK     bool
	nextMemory time.Time
	starts     int // probes while Starting
}

// quickProbes is how many probes of a Starting upstream come at a fifth of
// StartProbe: its first 100ms by default.
const quickProbes = 20

// Watch probes u until ctx ends or u is Stopped. Run it on its own goroutine.
func (c *Checker) Watch(ctx context.Context, u *Upstream) {
	pr := &probe{u: u, hc: probeClient(u.Address, c.opts.Timeout)}
	if u.ReportSocket != "" {
		pr.report = probeClient("unix:"+u.ReportSocket, c.opts.Timeout)
	}
	defer pr.close()
	// No sample at spawn: a process that has just exec'd has almost no
	// RSS yet, and that near-zero number would be logged and reported as
	// its memory. The first sample is taken when it turns Healthy, or
	// after one interval for a worker slow to start.
	pr.nextMemory = time.Now().Add(c.opts.MemoryInterval)
	t := time.NewTimer(c.wait(pr))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		start := time.Now()
		s := u.State()
		if s == Stopped {
			return
		}
		if s != Draining {
			c.apply(pr, c.check(pr))
		}
		if time.Now().After(pr.nextMemory) {
			c.sampleMemory(pr)
		}
		// Probes keep a fixed cadence from their start, so a hung upstream
		// is out after UnhealthyThreshold intervals, not intervals plus
		// timeouts.
		t.Reset(max(c.wait(pr)-time.Since(start), time.Millisecond))
	}
}

func (c *Checker) wait(pr *probe) time.Duration {
	if pr.u.State() == Starting {
		if pr.starts++; pr.starts <= quickProbes {
			return c.opts.StartProbe / 5
		}
		return c.opts.StartProbe
	}
	return c.opts.Interval
}

// probeClient returns the client that probes address, which is
// "unix:/path" or "host:port": one keep-alive connection, small buffers,
// and every read, write and dial bounded by timeout.
func probeClient(address string, timeout time.Duration) *fasthttp.HostClient {
	network, target := "tcp", address
	if p, ok := strings.CutPrefix(address, "unix:"); ok {
		network, target = "unix", p
	}
	return &fasthttp.HostClient{
		Addr:                      target,
		Name:                      "-",
		NoDefaultUserAgentHeader:  true,
		DisablePathNormalizing:    true,
		MaxIdemponentCallAttempts: 1,
		ReadTimeout:               timeout,
		WriteTimeout:              timeout,
		MaxIdleConnDuration:       time.Minute,
		MaxConns:                  1,
		ReadBufferSize:            4096,
		MaxResponseBodySize:       1 << 20,
		Dial: func(string) (net.Conn, error) {
			return net.DialTimeout(network, target, DialTimeout(timeout))
		},
	}
}

func (pr *probe) close() {
	pr.hc.CloseIdleConnections()
	if pr.report != nil {
		pr.report.CloseIdleConnections()
	}
}

// check sends one probe and reports whether it got a 2xx in time.
func (c *Checker) check(pr *probe) bool {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(c.opts.Path)
	req.Header.SetHost(hostOf(pr.u.Address))
	err := pr.hc.DoTimeout(req, resp, c.opts.Timeout)
	ok := err == nil && resp.StatusCode() >= 200 && resp.StatusCode() < 300
	pr.u.setCheck(time.Now(), c.probeError(ok, resp.StatusCode(), err))
	if !ok && c.log.IsDebug() {
		c.log.Debug("health probe failed", "upstream", pr.u.Address, "status", resp.StatusCode(), "error", err)
	}
	return ok
}

func hostOf(address string) string {
	if strings.HasPrefix(address, "unix:") {
		return "localhost"
	}
	return address
}

// apply moves the upstream's state after one probe.
func (c *Checker) apply(pr *probe, ok bool) {
	pr.lastOK = ok
	if ok {
		pr.oks, pr.fails = pr.oks+1, 0
	} else {
		pr.oks, pr.fails = 0, pr.fails+1
	}
	u := pr.u
	switch s := u.State(); s {
	case Starting:
		if ok && u.Transition(Starting, Healthy) {
			pr.oks = c.opts.HealthyThreshold
			pr.nextMemory = time.Time{} // sample the running worker now
			c.call(c.hooks.Ready, u)
		}
		if !ok {
			c.startTimedOut(pr)
		}
	case Healthy, Recycling:
		c.markUnhealthy(pr, s)
	case Unhealthy:
		if pr.oks >= c.opts.HealthyThreshold && u.Transition(Unhealthy, Healthy) {
			c.log.Info("upstream healthy again", "upstream", u.Address, "id", u.ID)
		}
	case Ejected:
		c.readmit(pr)
	}
}

// probeError words a probe's failure for /admin/workers' last_check_error;
// "" when it passed.
func (c *Checker) probeError(ok bool, status int, err error) string {
	switch {
	case ok:
		return ""
	case errors.Is(err, fasthttp.ErrTimeout):
		return "no answer within HEALTH_TIMEOUT (" + c.opts.Timeout.String() + ")"
	case err != nil:
		return err.Error()
	}
	return "status " + strconv.Itoa(status) + " from " + c.opts.Path
}

// startTimedOut makes a remote upstream that has not been healthy within
// RemoteStartTimeout of its addition Unhealthy, with one warning: it is no
// longer expected to come up soon, so it is probed every Interval and
// joins rotation after HealthyThreshold good probes, as an unhealthy
// upstream does.
func (c *Checker) startTimedOut(pr *probe) {
	u := pr.u
	t := c.opts.RemoteStartTimeout
	if u.Kind != Remote || t <= 0 || time.Since(u.StartedAt) < t || !u.Transition(Starting, Unhealthy) {
		return
	}
	_, why := u.LastCheck()
	c.log.Warn("remote upstream not healthy within the start timeout, marked unhealthy", "upstream", u.Address,
		"id", u.ID, "timeout", t, "failed_probes", pr.fails, "last_error", why)
}

func (c *Checker) markUnhealthy(pr *probe, from State) {
	if pr.fails >= c.opts.UnhealthyThreshold && pr.u.Transition(from, Unhealthy) {
		c.log.Warn("upstream unhealthy, out of rotation", "upstream", pr.u.Address,
			"id", pr.u.ID, "failed_probes", pr.fails)
		c.call(c.hooks.Unhealthy, pr.u)
	}
}

// readmit ends a passive ejection once its time is up, or turns it into
// an active failure when the probes fail too.
func (c *Checker) readmit(pr *probe) {
	c.markUnhealthy(pr, Ejected)
	if time.Now().Before(pr.u.EjectedUntil()) || !pr.lastOK {
		return
	}
	if pr.u.Transition(Ejected, Healthy) {
		c.log.Info("ejection over, upstream back in rotation", "upstream", pr.u.Address, "id", pr.u.ID)
	}
}

func (c *Checker) call(f func(*Upstream), u *Upstream) {
	if f != nil {
		f(u)
	}
}

// sampleMemory stores the upstream's RSS from /proc and, from kit workers,
// their runtime report.
func (c *Checker) sampleMemory(pr *probe) {
	pr.nextMemory = time.Now().Add(c.opts.MemoryInterval)
	if pr.u.PID == 0 {
		return
	}
	m := &protocol.MemoryReport{}
	if pr.report != nil {
		c.fetchReport(pr, m)
	}
	rss, err := protocol.ReadRSS(pr.u.PID)
	if err != nil || rss == 0 {
		return // the process is gone (a zombie has no RSS); its exit is reaped elsewhere
	}
	m.RSSBytes = rss
	m.ReportedAt = time.Now().UTC()
	pr.u.SetMemory(m)
	if c.hooks.Memory != nil {
		c.hooks.Memory(pr.u, m)
	}
}

func (c *Checker) fetchReport(pr *probe, m *protocol.MemoryReport) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(protocol.ReportPath)
	req.Header.SetHost("localhost")
	if err := pr.report.DoTimeout(req, resp, c.opts.Timeout); err != nil || resp.StatusCode() != 200 {
		return
	}
	if err := json.Unmarshal(resp.Body(), m); err != nil {
		c.log.Debug("bad memory report", "upstream", pr.u.Address, "error", err)
	}
}
