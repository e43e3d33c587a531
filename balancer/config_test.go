package main

import (
	"runtime"
	"strings"
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

// With a database the workers inherit, DB_MAX_CONNS must cover a
// connection per local worker and one for a replacement; without one
// (unset, or denied to the workers) any DB_MAX_CONNS goes.
func TestDBMaxConnsCoversWorkers(t *testing.T) {
	eight := 8
	for _, tc := range []struct {
		name  string
		url   string
		deny  []string
		conns int
		ok    bool
	}{
		{"enough", "postgres://db", nil, 9, true},
		{"one short", "postgres://db", nil, 8, false},
		{"no database", "", nil, 1, true},
		{"database denied to workers", "postgres://db", []string{"DATABASE_URL"}, 1, true},
	} {
		c := Config{ClusterMode: true, MaxWorkers: &eight, DBMaxConns: tc.conns, DatabaseURL: tc.url, WorkerEnvDeny: tc.deny}
		err := c.checkDBBudget()
		if (err == nil) != tc.ok || err != nil && !strings.HasPrefix(err.Error(), "DB_MAX_CONNS: ") {
			t.Errorf("%s: %v, want ok %v (an error naming DB_MAX_CONNS)", tc.name, err, tc.ok)
		}
	}
}
