package pool

import "sync/atomic"

// LeastConn picks the available upstream with the fewest requests in
// flight for its weight (in flight divided by weight, as nginx's
// least_conn). Ties are broken in turn, from a shared counter, each tied
// upstream taking its weight's share, so equal upstreams share the load
// evenly and weighted ones in proportion.
type LeastConn struct {
	turn atomic.Uint64
}

var _ Selector = (*LeastConn)(nil)

// Select implements Selector.
func (l *LeastConn) Select(ups []*Upstream, tried Tried) *Upstream {
	var best *Upstream
	var bestLoad, bestW, tieWeight int64
	for _, u := range ups {
		if !eligible(u, tried) {
			continue
		}
		load, w := u.Inflight(), u.weight()
		switch {
		case best == nil || load*bestW < bestLoad*w:
			best, bestLoad, bestW, tieWeight = u, load, w, w
		case load*bestW == bestLoad*w:
			tieWeight += w
		}
	}
	if best == nil || tieWeight == bestW {
		return best
	}
	// Take the tied upstream the k-th share of their weights falls on.
	k := int64(l.turn.Add(1) % uint64(tieWeight))
	for _, u := range ups {
		if eligible(u, tried) && u.Inflight()*bestW == bestLoad*u.weight() {
			if k -= u.weight(); k < 0 {
				return u
			}
		}
	}
	return best // loads moved between the passes
}
