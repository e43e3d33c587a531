package pool

import (
	"errors"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
)

// ErrNoUpstream means no upstream could take the request.
var ErrNoUpstream = errors.New("no healthy upstream")

// OutlierOptions configures passive ejection, modelled on Envoy's outlier
// detection: an upstream that fails Consecutive proxy attempts in a row is
// ejected for BaseEjection times the number of its ejections so far, capped
// at MaxEjection; at most MaxEjectedPercent of the pool is ever ejected.
type OutlierOptions struct {
	// Consecutive failures that eject. If zero, 5.
	Consecutive int
	// BaseEjection is the first ejection's length. If zero, 30s.
	BaseEjection time.Duration
	// MaxEjection caps an ejection's length. If zero, 300s.
	MaxEjection time.Duration
	// MaxEjectedPercent bounds the ejected share of the pool. If zero, 50.
	MaxEjectedPercent int
}

func (o *OutlierOptions) defaults() {
	if o.Consecutive <= 0 {
		o.Consecutive = 5
	}
	if o.BaseEjection <= 0 {
		o.BaseEjection = 30 * time.Second
	}
	if o.MaxEjection <= 0 {
		o.MaxEjection = 300 * time.Second
	}
	if o.MaxEjectedPercent <= 0 {
		o.MaxEjectedPercent = 50
	}
}

// Pool is the set of upstreams the proxy routes to. The supervisor is its
// only writer: it publishes a new immutable slice with Publish, and the
// request path only loads it, so selection takes no lock.
type Pool struct {
	ups      atomic.Pointer[[]*Upstream]
	sel      Selector
	outlier  OutlierOptions
	log      hclog.Logger
	panicked atomic.Bool
	noEject  atomic.Bool // the "not ejecting" warning was logged
	sticky   stickyState

	// OnEject, when set, is called once for each passive ejection.
	OnEject func(u *Upstream)
}

// New returns an empty pool that selects with sel.
func New(sel Selector, o OutlierOptions, log hclog.Logger) *Pool {
	o.defaults()
	p := &Pool{sel: sel, outlier: o, log: log}
	p.Publish(nil)
	return p
}

// Publish replaces the upstream set. ups must not be changed afterwards.
func (p *Pool) Publish(ups []*Upstream) { p.ups.Store(&ups) }

// Upstreams returns the published set; callers must not change it.
func (p *Pool) Upstreams() []*Upstream { return *p.ups.Load() }

// Healthy counts the upstreams that take requests now.
func (p *Pool) Healthy() int {
	n := 0
	for _, u := range p.Upstreams() {
		if u.Available() {
			n++
		}
	}
	return n
}

// Pick selects an upstream not in tried and counts a request in flight on
// it; the caller must Release it. When no healthy upstream is left it
// routes to a Recycling one (healthy, only past its request limit), else to
// a passively ejected one rather than fail (Envoy's panic mode, logged
// once). It returns nil when nothing can take the request.
func (p *Pool) Pick(tried Tried) *Upstream {
	ups := p.Upstreams()
	for range len(ups) + 1 {
		u := p.sel.Select(ups, tried)
		if u == nil {
			break
		}
		if u.Acquire() {
			if p.panicked.Load() && p.panicked.CompareAndSwap(true, false) {
				p.log.Info("healthy upstreams are back, leaving panic routing")
			}
			return u
		}
	}
	if u := pickRecycling(ups, tried); u != nil {
		return u
	}
	return p.pickEjected(ups, tried)
}

// pickRecycling keeps a worker past its request limit serving while it is
// the only one left, as its replacement starts.
func pickRecycling(ups []*Upstream, tried Tried) *Upstream {
	for _, u := range ups {
		if u.State() == Recycling && !tried.Has(u) && u.acquireIn(Recycling) {
			return u
		}
	}
	return nil
}

func (p *Pool) pickEjected(ups []*Upstream, tried Tried) *Upstream {
	for _, u := range ups {
		if u.State() == Ejected && !tried.Has(u) {
			if p.panicked.CompareAndSwap(false, true) {
				p.log.Warn("no healthy upstream left, routing to ejected ones")
			}
			u.AcquireAny()
			return u
		}
	}
	return nil
}

// ReportSuccess clears the upstream's run of failures.
func (p *Pool) ReportSuccess(u *Upstream) {
	if u.consecFails.Load() != 0 {
		u.consecFails.Store(0)
	}
}

// ReportFailure counts a failed proxy attempt and ejects the upstream after
// too many in a row.
func (p *Pool) ReportFailure(u *Upstream) {
	u.failures.Add(1)
	if int(u.consecFails.Add(1)) >= p.outlier.Consecutive {
		p.eject(u)
	}
}

func (p *Pool) eject(u *Upstream) {
	if u.State() != Healthy || !p.mayEject() {
		return
	}
	if !u.Transition(Healthy, Ejected) {
		return
	}
	k := u.ejections.Add(1)
	d := min(p.outlier.BaseEjection*time.Duration(k), p.outlier.MaxEjection)
	u.ejectedUntil.Store(time.Now().Add(d).UnixNano())
	u.consecFails.Store(0)
	p.log.Warn("upstream ejected after consecutive failures",
		"upstream", u.Address, "id", u.ID, "for", d, "ejections", k)
	if p.OnEject != nil {
		p.OnEject(u)
	}
}

// mayEject reports whether one more ejection keeps the pool within bounds:
// at least one healthy upstream stays, and no more than MaxEjectedPercent
// are ejected.
func (p *Pool) mayEject() bool {
	ups := p.Upstreams()
	healthy, ejected := 0, 0
	for _, u := range ups {
		switch u.State() {
		case Healthy:
			healthy++
		case Ejected:
			ejected++
		}
	}
	limit := max(1, len(ups)*p.outlier.MaxEjectedPercent/100)
	if healthy <= 1 || ejected+1 > limit {
		// Once per change, not per failed request: while the pool stays
		// this small every failure past the threshold asks again.
		if p.noEject.CompareAndSwap(false, true) {
			p.log.Warn("not ejecting: too few upstreams would remain, routing to all",
				"healthy", healthy, "ejected", ejected)
		}
		return false
	}
	if p.noEject.Load() {
		p.noEject.Store(false)
	}
	return true
}
