package main

import (
	"fmt"
	"runtime"
	"strings"
)

// renderScaleReport returns the scaling mode's report as markdown: per
// path, one row per worker count and one for direct.
func renderScaleReport(in reportInput) string {
	var b strings.Builder
	writePreamble(&b, fmt.Sprintf("Performance: scaling with workers on %d cores", runtime.NumCPU()), "run it again", in)
	writeScaleMethod(&b, in.cfg)
	for _, p := range in.cfg.paths {
		fmt.Fprintf(&b, "## %s\n\n", p.label())
		writeScaleTable(&b, in.cfg, in.res[p.spec])
	}
	return b.String()
}

// writeScaleMethod explains how the scaling numbers were taken.
func writeScaleMethod(b *strings.Builder, c config) {
	b.WriteString("## Method\n\n")
	fmt.Fprintf(b, "One balancer per worker count (`MAX_WORKERS` = %s; each worker gets the balancer's "+
		"GOMAXPROCS share of the %d CPUs) and direct, one `bin/worker` on loopback TCP with GOMAXPROCS unset "+
		"(all cores), no proxy, are started once and kept running. Each of %d rounds loads every path on every "+
		"system in turn (the order rotates from round to round) with %s, after an unrecorded %s warm-up. The "+
		"load generator shares the machine with everything else. nginx and HAProxy are not measured here.\n\n",
		joinInts(c.scale), runtime.NumCPU(), c.rounds, loadDesc(c), c.warmup)
	b.WriteString(statsDefinition + "Balancer CPU is the user + system " +
		"time of the balancer process alone (not its workers), from /proc, divided by the requests served. " +
		"vs direct is the req/s ratio to direct.\n\n")
}

// writeScaleTable writes one path's scaling table.
func writeScaleTable(b *strings.Builder, c config, cells map[string]*cell) {
	b.WriteString("| workers | req/s | spread | p50 | p99 | errors | balancer CPU µs/req | vs direct |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|\n")
	var direct float64
	if dc := cells[sysDirect]; dc != nil {
		direct = dc.summary().rps
	}
	row := func(label, kind string, cl *cell) {
		s := cl.summary()
		fmt.Fprintf(b, "| %s | %.0f | %.1f%% | %s | %s | %d | %s | %s |\n", label, s.rps, s.spread*100,
			fmtLatency(s.p50), fmtLatency(s.p99), s.errors, proxyCPU(kind, s), ratio(s.rps, direct))
	}
	for _, n := range c.scale {
		if cl := cells[scaleName(n)]; cl != nil {
			row(fmt.Sprintf("balancer, %d", n), sysBalancer, cl)
		}
	}
	if dc := cells[sysDirect]; dc != nil {
		row(fmt.Sprintf("direct (1 worker, %d cores, TCP)", runtime.NumCPU()), sysDirect, dc)
	}
	b.WriteString("\n")
}

// joinInts renders 1,2,4 as "1, 2, 4".
func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = fmt.Sprint(n)
	}
	return strings.Join(s, ", ")
}
