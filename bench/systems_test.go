package main

import (
	"slices"
	"strings"
	"testing"
	"time"
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

// TestBalancerJSON checks balancer-json is a balancer with ACCESS_LOG=json,
// measured on the first GET path only and on no WebSocket path, and that
// the report gives the access log's cost against balancer (ACCESS_LOG=off).
func TestBalancerJSON(t *testing.T) {
	if kindOf(sysBalancerJSON) != sysBalancer || !slices.Equal(variantEnv(sysBalancerJSON), []string{"ACCESS_LOG=json"}) {
		t.Errorf("balancer-json: kind %q, env %q", kindOf(sysBalancerJSON), variantEnv(sysBalancerJSON))
	}
	if slices.Contains(wsSystemNames(allSystems), sysBalancerJSON) {
		t.Error("balancer-json measures WebSockets")
	}
	paths, err := parsePaths([]string{"post:100:/up", "/api/health", "/api/work?n=200", "ws:/ws"})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []bool{false, true, false, false} {
		if got := measuredOn(sysBalancerJSON, paths[i], paths); got != want || !measuredOn(sysBalancer, paths[i], paths) {
			t.Errorf("measuredOn(balancer-json, %s) = %v, want %v", paths[i].spec, got, want)
		}
	}
	cfg := config{rounds: 1, paths: paths, systems: []string{sysBalancer, sysBalancerJSON}}
	mk := func(rps float64) *cell {
		return &cell{samples: []sample{{wrk: wrkResult{RPS: rps, Requests: int64(rps) * 5,
			Latency: map[int]time.Duration{50: time.Millisecond, 99: 2 * time.Millisecond}}, cpu: time.Duration(rps) * 5 * 10 * time.Microsecond}}}
	}
	res := results{"/api/health": {sysBalancer: mk(1000), sysBalancerJSON: mk(950)}}
	var b strings.Builder
	writeAccessLogCost(&b, cfg, res)
	if !strings.Contains(b.String(), "## Access log") || !strings.Contains(b.String(), "950 against 1000 req/s, -5.0% of throughput") {
		t.Errorf("access log section:\n%s", b.String())
	}
	if !strings.Contains(accessLogNote(cfg), "ACCESS_LOG=json") {
		t.Errorf("method note: %q", accessLogNote(cfg))
	}
}
