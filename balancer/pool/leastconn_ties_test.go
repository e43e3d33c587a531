package pool

import "testing"

// LeastConn documents that "ties go to the first one found from a rotating
// start, so equal upstreams share the load". They do not when an upstream
// that is not part of the tie (busier, or unavailable) sits in the
// rotation: every start that lands on it resolves to the tied upstream
// right after it, which so gets two turns out of three. RoundRobin avoids
// this by advancing its counter past skipped upstreams; LeastConn's start
// only ever advances by one.
//
// Seen in production terms: 3 idle workers under least_conn, one draining
// (or unhealthy, or one long request on it), and the worker after it in
// the slice takes 2/3 of the traffic instead of 1/2.
func TestLeastConnTiesShareEvenly(t *testing.T) {
	testLeastConnTies(t, []tieCase{
		{"two tied, one busier", []State{Healthy, Healthy, Healthy}, []int64{4, 1, 1}, map[int]int{2: 30, 3: 30}},
		{"tie around a draining one", []State{Healthy, Draining, Healthy}, []int64{0, 0, 0}, map[int]int{1: 30, 3: 30}},
	})
}
