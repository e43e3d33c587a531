package pool

import "sync/atomic"

// LeastConn picks the available upstream with the fewest requests in
// flight. Ties are broken in turn, from a shared counter, so equal
// upstreams share the load evenly.
type LeastConn struct {
	turn atomic.Uint64
}

var _ Selector = (*LeastConn)(nil)

// Select implements Selector.
func (l *LeastConn) Select(ups []*Upstream, tried Tried) *Upstream {
	var best *Upstream
	var bestLoad int64
	ties := uint64(0)
	for _, u := range ups {
		if !eligible(u, tried) {
			continue
		}
		switch load := u.Inflight(); {
		case best == nil || load < bestLoad:
			best, bestLoad, ties = u, load, 1
		case load == bestLoad:
			ties++
		}
	}
	if ties <= 1 {
		return best
	}
	// Take the k-th of the tied upstreams.
	k := l.turn.Add(1) % ties
	for _, u := range ups {
		if eligible(u, tried) && u.Inflight() == bestLoad {
			if k == 0 {
				return u
			}
			k--
		}
	}
	return best // loads moved between the passes
}
