package main

import (
	"slices"
	"testing"
)

// TestBalancerStream checks balancer-stream is a balancer listed right
// after it, started with its buffering off, and that the failure checks
// still find the balancer itself.
func TestBalancerStream(t *testing.T) {
	if i := slices.Index(allSystems, sysBalancerStream); i < 1 || allSystems[i-1] != sysBalancer {
		t.Errorf("allSystems = %q, want balancer-stream right after balancer", allSystems)
	}
	for name, kind := range map[string]string{sysBalancerStream: sysBalancer, sysBalancer: sysBalancer,
		sysNginx: sysNginx, sysDirect: sysDirect} {
		if got := kindOf(name); got != kind {
			t.Errorf("kindOf(%q) = %q, want %q", name, got, kind)
		}
	}
	if got := variantEnv(sysBalancerStream); !slices.Equal(got, []string{"REQUEST_BUFFERING=false", "RESPONSE_BUFFER=off"}) {
		t.Errorf("variantEnv(balancer-stream) = %q", got)
	}
	if got := variantEnv(sysBalancer); got != nil {
		t.Errorf("variantEnv(balancer) = %q, want none", got)
	}
	systems := []*system{{name: sysBalancerStream, kind: sysBalancer}, {name: sysBalancer, kind: sysBalancer}}
	if b := findSystem(systems, sysBalancer); b != systems[1] {
		t.Errorf("findSystem(balancer) = %+v, want the balancer, not balancer-stream", b)
	}
}
