package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// sample is one load run (wrk or -load go) against one system and path.
type sample struct {
	wrk wrkResult
	cpu time.Duration // the proxy's CPU time during the run
}

// cell gathers every sample of one system on one path.
type cell struct {
	samples []sample
	peakRSS uint64 // the proxy's VmHWM, bytes; 0 without a proxy
}

// results maps a path's entry as given (pathSpec.spec), then a system's
// name, to its cell.
type results map[string]map[string]*cell

// bench runs the whole benchmark: build, start, rounds, failure checks,
// report.
func bench(ctx context.Context, cfg config) error {
	started := time.Now().UTC()
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	t, err := resolveTools(ctx, cfg, root)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "procbal-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	su := setup{cfg: cfg, tools: t, dir: dir, logDir: filepath.Join(dir, "logs")}
	if err := os.Mkdir(su.logDir, 0o700); err != nil {
		return err
	}
	stopDB, err := startDatabase(ctx, &su)
	defer stopDB()
	if err != nil {
		return err
	}
	start := startAll
	if len(cfg.scale) > 0 {
		start = startScale
	}
	systems, err := start(ctx, su)
	defer stopAll(systems)
	if err != nil {
		return err
	}
	if len(systems) > 0 {
		if err := seedItem(&su, systems[0].baseURL); err != nil {
			return err
		}
	}
	wsSystems, err := startWSSystems(ctx, su)
	defer stopAll(wsSystems)
	if err != nil {
		return err
	}
	return measureAndReport(ctx, su, systems, wsSystems, root, started)
}

// measureAndReport runs the rounds and the failure checks, then prints and
// writes the report. Failed requests in the checks make it an error.
func measureAndReport(ctx context.Context, su setup, systems, wsSystems []*system, root string, started time.Time) error {
	cfg, t := su.cfg, su.tools
	fmt.Fprintf(os.Stderr, "bench: throughput rounds take about %s\n", cfg.estimate().Round(time.Second))
	res, err := measure(ctx, su, systems, wsSystems)
	if err != nil {
		return err
	}
	var events []eventResult
	if b := findSystem(systems, sysBalancer); cfg.failures && b != nil {
		events = runFailureChecks(ctx, b, cfg.workers)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	render := renderReport
	if len(cfg.scale) > 0 {
		render = renderScaleReport
	}
	doc := render(reportInput{cfg: cfg, tools: t, res: res, events: events, started: started})
	fmt.Print(doc)
	if cfg.docs != "" {
		if err := writeDoc(root, cfg.docs, doc); err != nil {
			return err
		}
	}
	return failureVerdict(events)
}

// startAll starts every configured system; on error it returns those
// already started, for the caller to stop.
func startAll(ctx context.Context, su setup) ([]*system, error) {
	var out []*system
	for _, name := range su.cfg.systems {
		fmt.Fprintf(os.Stderr, "bench: starting %s\n", name)
		s, err := startSystem(ctx, su, name)
		if err != nil {
			return out, err
		}
		out = append(out, s)
	}
	return out, nil
}

// startWSSystems starts, when -paths has a ws: entry, the systems that
// measure it (wsSystemNames) in front of WebSocket echo workers: this
// binary run again as one (websocket.go), in directories of their own. On
// error it returns those already started, for the caller to stop.
func startWSSystems(ctx context.Context, su setup) ([]*system, error) {
	if !slices.ContainsFunc(su.cfg.paths, func(p pathSpec) bool { return p.ws }) {
		return nil, nil
	}
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("the WebSocket echo worker is this binary: %w", err)
	}
	su.tools.worker = self
	su.workerEnv = append(su.workerEnv, benchRoleEnv+"="+wsEchoRole)
	su.dir, su.logDir = filepath.Join(su.dir, "ws"), filepath.Join(su.logDir, "ws")
	for _, d := range []string{su.dir, su.logDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	var out []*system
	for _, name := range wsSystemNames(su.cfg.systems) {
		fmt.Fprintf(os.Stderr, "bench: starting %s with WebSocket echo workers\n", name)
		s, err := startSystem(ctx, su, name)
		if err != nil {
			return out, err
		}
		out = append(out, s)
	}
	return out, nil
}

// stopAll stops the systems.
func stopAll(systems []*system) {
	for _, s := range systems {
		s.stop()
	}
}

// findSystem returns the system named name, or nil.
func findSystem(systems []*system, name string) *system {
	for _, s := range systems {
		if s.name == name {
			return s
		}
	}
	return nil
}

// measure runs the rounds. Within a round each path is loaded on every
// system in turn (a ws: path on wsSystems); the order rotates from round to
// round so that no system always goes first. A POST path's wrk script goes
// into su.dir.
func measure(ctx context.Context, su setup, systems, wsSystems []*system) (results, error) {
	cfg, res := su.cfg, results{}
	base := wrkOptions{Engine: cfg.load, Path: su.tools.wrk, Threads: cfg.threads, Connections: cfg.connections,
		CPU: cfg.wrkCPU, Duration: cfg.duration}
	for r := 0; r < cfg.rounds; r++ {
		for _, p := range cfg.paths {
			list := systems
			if p.ws {
				list = wsSystems
			}
			if len(list) == 0 {
				continue // -systems balancer-stream alone: nothing measures a ws: path
			}
			order := append(append([]*system{}, list[r%len(list):]...), list[:r%len(list)]...)
			opts, err := pathOptions(base, p, su.dir)
			if err != nil {
				return nil, err
			}
			for _, s := range order {
				if !measuredOn(s.name, p, cfg.paths) {
					continue
				}
				if err := measurePath(ctx, cfg, opts, s, p, r, res); err != nil {
					return nil, err
				}
			}
		}
	}
	return res, nil
}

// measurePath loads p on s once in round r (0-based), after the warm-up in
// the first round, and prints the sample.
func measurePath(ctx context.Context, cfg config, opts wrkOptions, s *system, p pathSpec, r int, res results) error {
	if r == 0 && cfg.warmup > 0 {
		warm := opts
		warm.Duration = cfg.warmup
		if _, err := runLoad(ctx, warm, s.baseURL+p.path); err != nil {
			return fmt.Errorf("%s warm-up: %w", s.name, err)
		}
	}
	if err := measureOne(ctx, opts, s, p, res); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "bench: round %d/%d %-15s %-24s %s\n", r+1, cfg.rounds, s.name, p.label(),
		lastSample(res, p, s.name))
	return nil
}

// measureOne loads p on s once and records the sample with the proxy's
// CPU time during the run and its peak RSS so far.
func measureOne(ctx context.Context, opts wrkOptions, s *system, p pathSpec, res results) error {
	if err := s.alive(); err != nil {
		return err
	}
	pids := s.proxyPIDs()
	before := sampleCPU(pids)
	w, err := runLoad(ctx, opts, s.baseURL+p.path)
	if err != nil {
		return fmt.Errorf("%s: %w", s.name, err)
	}
	after := sampleCPU(pids)
	if res[p.spec] == nil {
		res[p.spec] = map[string]*cell{}
	}
	c := res[p.spec][s.name]
	if c == nil {
		c = &cell{}
		res[p.spec][s.name] = c
	}
	c.samples = append(c.samples, sample{wrk: w, cpu: after.CPU - before.CPU})
	c.peakRSS = max(c.peakRSS, samplePeakRSS(pids))
	return s.alive()
}

// lastSample summarises the latest sample of a cell for progress lines.
func lastSample(res results, p pathSpec, name string) string {
	c := res[p.spec][name]
	w := c.samples[len(c.samples)-1].wrk
	unit := "req/s"
	if p.ws {
		unit = "msg/s"
	}
	return fmt.Sprintf("%9.0f %s  p99 %-9s errors %d", w.RPS, unit, fmtLatency(w.Latency[99]), w.Errors())
}
