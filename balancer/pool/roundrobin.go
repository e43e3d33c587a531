package pool

import (
	"sync/atomic"
	"unsafe"
)

// RoundRobin hands requests to the available upstreams in turn, from one
// shared atomic counter (Caddy's RoundRobinSelection). With weights, the
// turn follows nginx's smooth weighted round robin: a schedule computed
// once per published set (weights 1 and 3 give b a b b, not a b b b), so
// the request path still only adds to the counter.
type RoundRobin struct {
	next  atomic.Uint64
	sched atomic.Pointer[schedule]
}

var _ Selector = (*RoundRobin)(nil)

// schedule is the smooth weighted order of one published set, or nil
// order when every weight is 1. data, the set's backing array, tells the
// set apart; holding it keeps that memory from being reused by another.
type schedule struct {
	data  **Upstream
	n     int
	order []*Upstream
}

// Select implements Selector.
func (r *RoundRobin) Select(ups []*Upstream, tried Tried) *Upstream {
	n := uint64(len(ups))
	if n == 0 {
		return nil
	}
	if s := r.weighted(ups); s != nil {
		return r.selectWeighted(s.order, tried)
	}
	start := r.next.Add(1) - 1
	for i := range n {
		u := ups[(start+i)%n]
		if eligible(u, tried) {
			if i > 0 {
				// Skip the unavailable ones for the next request too, so
				// the rotation over available upstreams stays exact.
				r.next.Add(i)
			}
			return u
		}
	}
	return nil
}

func (r *RoundRobin) selectWeighted(order []*Upstream, tried Tried) *Upstream {
	n := uint64(len(order))
	start := r.next.Add(1) - 1
	for i := range n {
		if u := order[(start+i)%n]; eligible(u, tried) {
			return u
		}
	}
	return nil
}

// weighted returns the schedule of ups when some weight is not 1, else
// nil; it is built on the first request after the set changed.
func (r *RoundRobin) weighted(ups []*Upstream) *schedule {
	data := unsafe.SliceData(ups)
	s := r.sched.Load()
	if s == nil || s.data != data || s.n != len(ups) {
		s = &schedule{data: data, n: len(ups)}
		for _, u := range ups {
			if u.weight() != 1 {
				s.order = smoothOrder(ups)
				break
			}
		}
		r.sched.Store(s)
	}
	if s.order == nil {
		return nil
	}
	return s
}

// smoothOrder is nginx's smooth weighted round robin run for one full
// cycle: every step each upstream's current weight grows by its weight,
// the largest is taken and loses the total.
func smoothOrder(ups []*Upstream) []*Upstream {
	var total int64
	for _, u := range ups {
		total += u.weight()
	}
	cur := make([]int64, len(ups))
	order := make([]*Upstream, 0, total)
	for range total {
		best := 0
		for i, u := range ups {
			cur[i] += u.weight()
			if cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= total
		order = append(order, ups[best])
	}
	return order
}
