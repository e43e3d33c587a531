package pool

import "sync/atomic"

// RoundRobin hands requests to the available upstreams in turn, from one
// shared atomic counter (Caddy's RoundRobinSelection).
type RoundRobin struct {
	next atomic.Uint64
}

var _ Selector = (*RoundRobin)(nil)

// Select implements Selector.
func (r *RoundRobin) Select(ups []*Upstream, tried Tried) *Upstream {
	n := uint64(len(ups))
	if n == 0 {
		return nil
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
