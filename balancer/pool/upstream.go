// Package pool holds the upstreams the proxy routes to: their state in
// atomics, the published snapshot the request path reads without locks, the
// selection policies, and the health checker.
package pool

import (
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/procbal/procbal/shared/protocol"
)

// State is an upstream's place in its life cycle.
type State int32

// The states, as /admin/workers names them.
const (
	Starting State = iota
	Healthy
	Unhealthy
	Ejected
	Draining
	Stopped
)

var stateNames = [...]string{"starting", "healthy", "unhealthy", "ejected", "draining", "stopped"}

func (s State) String() string {
	if s < 0 || int(s) >= len(stateNames) {
		return "unknown"
	}
	return stateNames[s]
}

// Kind tells local workers from remote upstreams.
type Kind string

// The kinds of upstream.
const (
	Local  Kind = "local"
	Remote Kind = "remote"
)

// Upstream is one place requests can go: a local worker's socket or a remote
// host. Its counters and state are atomics read and written by the request
// path; it must not be copied after first use.
type Upstream struct {
	// ID is the worker slot (local) or the position in UPSTREAMS (remote).
	ID int
	// Kind is Local or Remote.
	Kind Kind
	// Address is "unix:/path" or "host:port".
	Address string
	// PID is the worker's process id, 0 for remote upstreams.
	PID int
	// ReportSocket is the worker kit's report socket, empty when none.
	ReportSocket string
	// Client carries proxied requests; one per upstream, pooling its own
	// keep-alive connections.
	Client *fasthttp.HostClient
	// StartedAt is when the process was spawned or the upstream added.
	StartedAt time.Time

	state        atomic.Int32
	inflight     atomic.Int64
	requests     atomic.Uint64
	failures     atomic.Uint64
	consecFails  atomic.Int32
	ejections    atomic.Int32
	ejectedUntil atomic.Int64 // unix nanoseconds
	statusClass  [6]atomic.Uint64
	memory       atomic.Pointer[protocol.MemoryReport]
	overLimit    atomic.Bool
}

// ClientOptions sets the per-upstream client limits.
type ClientOptions struct {
	// Timeout bounds each read and write to the upstream (UPSTREAM_TIMEOUT).
	Timeout time.Duration
	// MaxConns bounds the keep-alive pool. If zero, fasthttp's default.
	MaxConns int
	// IdleTime closes pooled connections idle this long. If zero, 30s.
	IdleTime time.Duration
	// ReadBufferSize bounds upstream response headers. If zero, 64 KiB.
	ReadBufferSize int
}

// NewUpstream returns an upstream in state Starting for address, which is
// "unix:/path" or "host:port".
func NewUpstream(id int, kind Kind, address string, o ClientOptions) *Upstream {
	u := &Upstream{ID: id, Kind: kind, Address: address, StartedAt: time.Now()}
	u.Client = newClient(address, o)
	return u
}

// DialError marks a failure to connect: nothing reached the upstream, so the
// request may always go to another one.
type DialError struct{ Err error }

func (e *DialError) Error() string { return "dialing upstream: " + e.Err.Error() }
func (e *DialError) Unwrap() error { return e.Err }

func newClient(address string, o ClientOptions) *fasthttp.HostClient {
	if o.IdleTime <= 0 {
		o.IdleTime = 30 * time.Second
	}
	if o.ReadBufferSize <= 0 {
		o.ReadBufferSize = 64 << 10
	}
	hc := &fasthttp.HostClient{
		Addr:                      address,
		Name:                      "-",
		NoDefaultUserAgentHeader:  true,
		DisablePathNormalizing:    true,
		MaxIdemponentCallAttempts: 1,
		ReadTimeout:               o.Timeout,
		WriteTimeout:              o.Timeout,
		MaxIdleConnDuration:       o.IdleTime,
		MaxConns:                  o.MaxConns,
		ReadBufferSize:            o.ReadBufferSize,
		ConnPoolStrategy:          fasthttp.LIFO,
	}
	network, target := "tcp", address
	if p, ok := strings.CutPrefix(address, "unix:"); ok {
		network, target = "unix", p
		hc.Addr = p
	}
	hc.Dial = func(string) (net.Conn, error) {
		c, err := net.DialTimeout(network, target, DialTimeout(o.Timeout))
		if err != nil {
			return nil, &DialError{Err: err}
		}
		return c, nil
	}
	return hc
}

// DialTimeout bounds connecting to an upstream: UPSTREAM_TIMEOUT, at most 3s.
func DialTimeout(upstream time.Duration) time.Duration {
	if upstream > 0 && upstream < 3*time.Second {
		return upstream
	}
	return 3 * time.Second
}

// State returns the current state.
func (u *Upstream) State() State { return State(u.state.Load()) }

// SetState stores s and returns the previous state.
func (u *Upstream) SetState(s State) State { return State(u.state.Swap(int32(s))) }

// Transition moves the upstream from one state to another and reports
// whether it flipped, so each change is acted on and logged once.
func (u *Upstream) Transition(from, to State) bool {
	return u.state.CompareAndSwap(int32(from), int32(to))
}

// Available reports whether new requests may go to the upstream.
func (u *Upstream) Available() bool { return u.state.Load() == int32(Healthy) }

// Inflight returns the number of requests being proxied to it now.
func (u *Upstream) Inflight() int64 { return u.inflight.Load() }

// Requests returns the number of requests sent to it.
func (u *Upstream) Requests() uint64 { return u.requests.Load() }

// Failures returns the number of failed proxy attempts.
func (u *Upstream) Failures() uint64 { return u.failures.Load() }

// Ejections returns how often it was passively ejected.
func (u *Upstream) Ejections() int { return int(u.ejections.Load()) }

// StatusClass returns how many answers of class c (1..5 for 1xx..5xx) it gave.
func (u *Upstream) StatusClass(c int) uint64 { return u.statusClass[c].Load() }

// Acquire counts a request in flight and reports whether the upstream still
// takes requests. A false answer has already undone the count. Checking the
// state after counting means a drain that sees zero in flight after marking
// the upstream Draining cannot miss a request that is about to start.
func (u *Upstream) Acquire() bool {
	u.inflight.Add(1)
	if u.Available() {
		return true
	}
	u.inflight.Add(-1)
	return false
}

// AcquireAny counts a request in flight without checking the state; the
// pool uses it when it routes to ejected upstreams as a last resort.
func (u *Upstream) AcquireAny() { u.inflight.Add(1) }

// Release ends a request counted by Acquire, recording its status code, or
// 0 when it failed before an answer.
func (u *Upstream) Release(status int) {
	u.inflight.Add(-1)
	u.requests.Add(1)
	if c := status / 100; c > 0 && c < len(u.statusClass) {
		u.statusClass[c].Add(1)
	}
}

// Memory returns the latest memory report, or nil before the first.
func (u *Upstream) Memory() *protocol.MemoryReport { return u.memory.Load() }

// SetMemory stores a memory report.
func (u *Upstream) SetMemory(m *protocol.MemoryReport) { u.memory.Store(m) }

// EjectedUntil returns the end of the current passive ejection.
func (u *Upstream) EjectedUntil() time.Time { return time.Unix(0, u.ejectedUntil.Load()) }

// OverThreshold reports whether the last memory sample was above
// MEMORY_THRESHOLD_MB.
func (u *Upstream) OverThreshold() bool { return u.overLimit.Load() }

// SetOverThreshold stores the threshold flag and reports whether it changed.
func (u *Upstream) SetOverThreshold(over bool) bool { return u.overLimit.Swap(over) != over }
