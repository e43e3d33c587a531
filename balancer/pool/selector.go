package pool

import (
	"fmt"
	"strings"
)

// Selector picks the upstream for a request. It must skip upstreams that
// are not Available and those in tried, and return nil when none is left.
// Implementations are safe for concurrent use and take no lock.
type Selector interface {
	Select(ups []*Upstream, tried Tried) *Upstream
}

// MaxTries bounds the attempts one request makes.
const MaxTries = 3

// Tried lists the upstreams a request already tried. It is a value, so
// passing it through the Selector interface allocates nothing.
type Tried struct {
	list [MaxTries]*Upstream
	n    int
}

// Add records u; past MaxTries it is a no-op.
func (t *Tried) Add(u *Upstream) {
	if t.n < MaxTries {
		t.list[t.n] = u
		t.n++
	}
}

// Len returns the number of upstreams tried.
func (t Tried) Len() int { return t.n }

// Has reports whether u was tried.
func (t Tried) Has(u *Upstream) bool {
	for i := range t.n {
		if t.list[i] == u {
			return true
		}
	}
	return false
}

// Strategies are the names BALANCE_STRATEGY accepts.
var Strategies = []string{"round_robin", "least_conn"}

// NewSelector returns the policy named by BALANCE_STRATEGY.
func NewSelector(name string) (Selector, error) {
	switch name {
	case "round_robin":
		return &RoundRobin{}, nil
	case "least_conn":
		return &LeastConn{}, nil
	}
	return nil, fmt.Errorf("unknown strategy %q (want %s)", name, strings.Join(Strategies, " or "))
}

func eligible(u *Upstream, tried Tried) bool {
	return u.Available() && !tried.Has(u)
}
