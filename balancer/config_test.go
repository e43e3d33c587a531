package main

import (
	"runtime"
	"testing"
)

// PROXY_LOOPS unset: every core for a remote-only balancer, else the
// engine's default (0: half the cores); set: as given.
func TestProxyLoopsDefault(t *testing.T) {
	zero, two := 0, 2
	for _, tc := range []struct {
		name    string
		loops   int
		workers *int
		cluster bool
		want    int
	}{
		{"remote only", 0, &zero, true, runtime.GOMAXPROCS(0)},
		{"local workers", 0, &two, true, 0},
		{"cluster mode off", 0, &zero, false, 0},
		{"set", 3, &zero, true, 3},
	} {
		c := Config{ProxyLoops: tc.loops, MaxWorkers: tc.workers, ClusterMode: tc.cluster}
		if got := c.loops(); got != tc.want {
			t.Errorf("%s: loops() = %d, want %d", tc.name, got, tc.want)
		}
	}
}
