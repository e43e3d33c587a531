package main

// Scaling mode (-scale 1,2,4,...): one balancer per worker count, each with
// MAX_WORKERS set to it, and direct: one worker on loopback TCP with no
// GOMAXPROCS, so using every core. All are started before the rounds and
// measured interleaved like the normal mode's systems; nginx and HAProxy are
// not run.

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
)

// parseScale parses -scale: a comma list of worker counts, each a positive
// integer and none repeated. An empty list turns the mode off (nil).
func parseScale(list string) ([]int, error) {
	if strings.TrimSpace(list) == "" {
		return nil, nil
	}
	var out []int
	for _, item := range strings.Split(list, ",") {
		item = strings.TrimSpace(item)
		n, err := strconv.Atoi(item)
		switch {
		case item == "":
			return nil, fmt.Errorf("-scale %q: empty item", list)
		case err != nil || n < 1:
			return nil, fmt.Errorf("-scale %q: %q is not a worker count of at least 1", list, item)
		case slices.Contains(out, n):
			return nil, fmt.Errorf("-scale %q: %d given twice", list, n)
		}
		out = append(out, n)
	}
	return out, nil
}

// scaleName names the balancer system with n workers.
func scaleName(n int) string { return sysBalancer + "-" + strconv.Itoa(n) }

// startScale starts a balancer for each worker count of su.cfg.scale, then
// direct; on error it returns those already started, for the caller to stop.
func startScale(ctx context.Context, su setup) ([]*system, error) {
	var out []*system
	for _, n := range su.cfg.scale {
		fmt.Fprintf(os.Stderr, "bench: starting the balancer with %d workers\n", n)
		s, err := startScaledBalancer(ctx, su, n)
		if err != nil {
			return out, err
		}
		out = append(out, s)
	}
	fmt.Fprintf(os.Stderr, "bench: starting %s (1 worker, all cores)\n", sysDirect)
	s, err := startSystem(ctx, su, sysDirect)
	if err != nil {
		return out, err
	}
	return append(out, s), nil
}

// startScaledBalancer starts a balancer with MAX_WORKERS=n, named
// scaleName(n).
func startScaledBalancer(ctx context.Context, su setup, n int) (*system, error) {
	s := &system{name: scaleName(n), kind: sysBalancer}
	su.cfg.workers = n
	if err := startBalancer(ctx, su, s); err != nil {
		s.stop()
		return nil, fmt.Errorf("start %s: %w", s.name, err)
	}
	return s, nil
}
