// Package pool holds the upstreams the proxy routes to: their state in
// atomics, the published snapshot the request path reads without locks, the
// selection policies, and the health checker.
package pool

import (
	"sync/atomic"
	"time"

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
	// Recycling: past its MAX_REQUESTS, out of rotation while its
	// replacement starts; still probed, and still routed to when no
	// Healthy upstream is left.
	Recycling
	// CrashLoop names a local worker slot whose processes keep failing
	// (/admin/workers). The supervisor reports it; no upstream in the pool
	// is ever in it.
	CrashLoop
)

var stateNames = [...]string{"starting", "healthy", "unhealthy", "ejected", "draining", "stopped",
	"recycling", "crash_loop"}

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
	// Weight is the upstream's share of requests relative to the others
	// (nginx's server weight), 1 to MaxWeight; 0 means 1. Local workers
	// have 1. Set before the upstream is published.
	Weight int
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
	// StartedAt is when the process was spawned or the upstream added.
	StartedAt time.Time

	state        atomic.Int32
	inflight     atomic.Int64
	tunnels      atomic.Int64
	requests     atomic.Uint64
	failures     atomic.Uint64
	consecFails  atomic.Int32
	ejections    atomic.Int32
	ejectedUntil atomic.Int64 // unix nanoseconds
	statusClass  [6]atomic.Uint64
	memory       atomic.Pointer[protocol.MemoryReport]
	overLimit    atomic.Bool
	requestLimit atomic.Uint64          // 0: off
	lastCheckAt  atomic.Int64           // unix nanoseconds of the last probe's end; 0 before the first
	lastCheckErr atomic.Pointer[string] // why the last probe failed; nil when it passed
	limitSignal  chan<- *Upstream       // set before the upstream is published
}

// NewUpstream returns an upstream in state Starting for address, which is
// "unix:/path" or "host:port".
// MaxWeight bounds an upstream's Weight.
const MaxWeight = 1000

// weight returns u's share of requests: Weight, or 1 when it is not set.
func (u *Upstream) weight() int64 {
	if u.Weight < 1 {
		return 1
	}
	return int64(u.Weight)
}

func NewUpstream(id int, kind Kind, address string) *Upstream {
	return &Upstream{ID: id, Kind: kind, Address: address, StartedAt: time.Now()}
}

// DialError marks a failure to connect: nothing reached the upstream, so the
// request may always go to another one.
type DialError struct{ Err error }

func (e *DialError) Error() string { return "dialing upstream: " + e.Err.Error() }
func (e *DialError) Unwrap() error { return e.Err }

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

// OpenTunnel counts a connection switched to another protocol (a
// WebSocket) as one request in flight until CloseTunnel: least_conn sees
// it, and draining waits for it.
func (u *Upstream) OpenTunnel() {
	u.inflight.Add(1)
	u.tunnels.Add(1)
}

// CloseTunnel ends what OpenTunnel counted.
func (u *Upstream) CloseTunnel() {
	u.tunnels.Add(-1)
	u.inflight.Add(-1)
}

// Tunnels returns the open tunnels to u.
func (u *Upstream) Tunnels() int64 { return u.tunnels.Load() }

// acquireIn is Acquire for an upstream in state s: the pool's fallback to
// Recycling upstreams, checked after counting for the same reason.
func (u *Upstream) acquireIn(s State) bool {
	u.inflight.Add(1)
	if u.State() == s {
		return true
	}
	u.inflight.Add(-1)
	return false
}

// Release ends a request counted by Acquire, recording its status code, or
// 0 when it failed before an answer. The request that brings the count to
// the limit set by WatchRequests signals it: one compare, no lock.
func (u *Upstream) Release(status int) {
	u.inflight.Add(-1)
	if u.requests.Add(1) == u.requestLimit.Load() {
		u.signalLimit()
	}
	if c := status / 100; c > 0 && c < len(u.statusClass) {
		u.statusClass[c].Add(1)
	}
}

// WatchRequests makes the request that brings the count to limit send u on
// signal, without blocking: a full channel drops the signal, so the
// receiver must also poll Requests. A limit of 0 turns it off. Call it
// before the upstream is published; the request path reads signal without
// synchronisation of its own.
func (u *Upstream) WatchRequests(limit uint64, signal chan<- *Upstream) {
	u.limitSignal = signal
	u.requestLimit.Store(limit)
}

func (u *Upstream) signalLimit() {
	select {
	case u.limitSignal <- u:
	default:
	}
}

// LastCheck returns when the last active health probe ended (zero before
// the first) and why it failed ("" when it passed).
func (u *Upstream) LastCheck() (at time.Time, errText string) {
	n := u.lastCheckAt.Load()
	if n == 0 {
		return time.Time{}, ""
	}
	if p := u.lastCheckErr.Load(); p != nil {
		errText = *p
	}
	return time.Unix(0, n), errText
}

// setCheck records a probe's end and outcome; the checker calls it, off
// the request path.
func (u *Upstream) setCheck(at time.Time, errText string) {
	if errText == "" {
		u.lastCheckErr.Store(nil)
	} else if p := u.lastCheckErr.Load(); p == nil || *p != errText {
		u.lastCheckErr.Store(&errText)
	}
	u.lastCheckAt.Store(at.UnixNano())
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
