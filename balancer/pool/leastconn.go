package pool

import "sync/atomic"

// LeastConn picks the available upstream with the fewest requests in
// flight. Ties go to the first one found from a rotating start, so equal
// upstreams share the load.
type LeastConn struct {
	start atomic.Uint64
}

var _ Selector = (*LeastConn)(nil)

// Select implements Selector.
func (l *LeastConn) Select(ups []*Upstream, tried Tried) *Upstream {
	n := uint64(len(ups))
	if n == 0 {
		return nil
	}
	first := l.start.Add(1)
	var best *Upstream
	var bestLoad int64
	for i := range n {
		u := ups[(first+i)%n]
		if !eligible(u, tried) {
			continue
		}
		if load := u.Inflight(); best == nil || load < bestLoad {
			best, bestLoad = u, load
		}
	}
	return best
}
