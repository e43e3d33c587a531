// Command bench measures the balancer against nginx, HAProxy and a worker
// reached directly, and checks that killing, scaling and reloading workers
// fails no request. balancer-stream, the balancer with its request and
// response buffering off, runs beside it to show what buffering costs, and
// a -paths entry post:<bytes>:<path> loads a path with POSTs of a body that
// size (paths.go), and ws:<path> echoes messages over WebSockets, each
// proxy then fronting WebSocket echo workers (websocket.go).
//
// Run it from the repository, as `make bench` does:
//
//	go run ./bench [flags]
//
// It builds bin/balancer and bin/worker, starts every system on loopback
// (each proxy in front of its own N fresh workers on unix sockets, all from
// the same worker binary), then loads them with wrk, round after round, the
// systems interleaved within each round so that machine drift hits all of
// them alike. It prints markdown tables and writes them, with the machine
// and the date, to docs/PERFORMANCE.md. Every process it started is ended on
// exit, Ctrl-C included.
//
// With -load go the load comes from a built-in generator (loadgen.go) instead
// of wrk, and -threads sets the bench process's GOMAXPROCS. With -scale
// 1,2,4,... it measures the balancer at each worker count against one worker
// using every core (scale.go). Together with -build=false they need neither
// the Go toolchain, wrk, nginx nor HAProxy: bench/device.sh builds static
// binaries here and runs them on a machine that has none of these.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

// defaultPaths is what -paths loads unless told otherwise: a minimal
// answer, one that costs the worker CPU, a minimal answer to a 16 KiB
// upload, which request buffering reads whole before picking a worker, and
// a WebSocket echo.
const defaultPaths = "/api/health,/api/work?n=200,/api/items/{id},post:16384:/api/health,ws:/ws"

// config is the run's settings, from flags.
type config struct {
	workers        int
	rounds         int
	duration       time.Duration
	warmup         time.Duration
	threads        int
	connections    int
	paths          []pathSpec
	systems        []string
	nginxWorkers   string
	haproxyThreads int
	wrkCPU         string
	binDir         string
	build          bool
	docs           string
	failures       bool
	balancerEnv    []string
	load           string   // loadWrk or loadGo
	scale          []int    // worker counts of the scaling mode; nil: normal mode
	args           []string // the flags as given, for the report
}

// parseFlags reads the command line.
func parseFlags(args []string) (config, error) {
	var c config
	var paths, systems, benv, scale string
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.IntVar(&c.workers, "workers", 2, "workers behind each proxy (N)")
	fs.IntVar(&c.rounds, "rounds", 3, "rounds; every system is measured once per path per round")
	fs.DurationVar(&c.duration, "duration", 5*time.Second, "length of one wrk measurement (whole seconds)")
	fs.DurationVar(&c.warmup, "warmup", time.Second, "unrecorded wrk run before a system's first measurement of a path (0: none)")
	fs.IntVar(&c.threads, "threads", 1, "wrk threads (-t); with -load go, the bench process's GOMAXPROCS")
	fs.IntVar(&c.connections, "connections", 32, "connections (wrk -c; with -load go, one goroutine each)")
	fs.StringVar(&c.load, "load", loadWrk, "load generator: wrk, or go (built in, fasthttp; needs no wrk)")
	fs.StringVar(&scale, "scale", "", "comma list of worker counts (e.g. 1,2,4,8,16): measure the balancer at each against one worker using all cores; -workers, -systems and -failures are then ignored (empty: off)")
	fs.StringVar(&paths, "paths", defaultPaths, "comma list of paths to GET, post:<bytes>:<path> to POST a body of that many bytes, or ws:<path> for a WebSocket echo over -connections tunnels")
	fs.StringVar(&systems, "systems", strings.Join(allSystems, ","), "comma list of systems to measure")
	fs.StringVar(&c.nginxWorkers, "nginx-workers", "1", "nginx worker_processes (a number or auto); 1 matches our single balancer process")
	fs.IntVar(&c.haproxyThreads, "haproxy-threads", 1, "HAProxy nbthread")
	fs.StringVar(&c.wrkCPU, "wrk-cpu", "", "pin wrk to this CPU list with taskset (e.g. 1); empty: not pinned")
	fs.StringVar(&c.binDir, "bin", "bin", "directory of the balancer and worker binaries")
	fs.BoolVar(&c.build, "build", true, "go build ./balancer ./worker into -bin first")
	fs.StringVar(&c.docs, "docs", "docs/PERFORMANCE.md", "write the Performance report here (empty: do not write)")
	fs.StringVar(&c.docs, "write-docs", "docs/PERFORMANCE.md", "same as -docs")
	fs.BoolVar(&c.failures, "failures", true, "after the rounds, count failed requests during a kill -9, a scale and a reload of the balancer's workers (the balancer system only)")
	fs.StringVar(&benv, "balancer-env", "", "comma list of extra KEY=VALUE settings for the balancer")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	c.systems, c.balancerEnv, c.args = splitList(systems), splitList(benv), args
	var err error
	if c.paths, err = parsePaths(splitList(paths)); err != nil {
		return c, err
	}
	if err := c.setScale(scale); err != nil {
		return c, err
	}
	if len(c.scale) > 0 && !flagSet(fs, "paths") {
		// The default's WebSocket row is not a scaling measurement.
		c.paths = slices.DeleteFunc(c.paths, func(p pathSpec) bool { return p.ws })
	}
	return c, c.validate()
}

// flagSet reports whether the command line set the flag name.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// setScale parses -scale; in scaling mode only the balancer and direct run,
// and the failure checks do not.
func (c *config) setScale(list string) error {
	var err error
	if c.scale, err = parseScale(list); err != nil {
		return err
	}
	if len(c.scale) > 0 {
		c.systems, c.failures = []string{sysBalancer, sysDirect}, false
	}
	return nil
}

// validate rejects settings the run cannot honour.
func (c config) validate() error {
	switch {
	case c.workers < 1, c.rounds < 1, c.threads < 1:
		return errors.New("-workers, -rounds and -threads must be at least 1")
	case c.connections < c.threads:
		return errors.New("-connections must be at least -threads")
	case c.duration < time.Second || c.duration%time.Second != 0:
		return errors.New("-duration must be whole seconds, at least 1s")
	case c.warmup < 0 || c.warmup%time.Second != 0:
		return errors.New("-warmup must be whole seconds")
	case len(c.paths) == 0 || len(c.systems) == 0:
		return errors.New("-paths and -systems must not be empty")
	case c.load != loadWrk && c.load != loadGo:
		return fmt.Errorf("-load: unknown %q (know %s, %s)", c.load, loadWrk, loadGo)
	case c.load == loadGo && c.wrkCPU != "":
		return errors.New("-wrk-cpu pins wrk; it does not apply to -load go")
	case len(c.scale) > 0 && slices.ContainsFunc(c.paths, func(p pathSpec) bool { return p.ws }):
		return errors.New("-scale measures HTTP paths only; drop the ws: entries")
	}
	for _, s := range c.systems {
		if !slices.Contains(allSystems, s) {
			return fmt.Errorf("-systems: unknown %q (know %s)", s, strings.Join(allSystems, ", "))
		}
	}
	return nil
}

// targets is how many systems the rounds load: the configured ones, or in
// scaling mode one balancer per worker count plus direct.
func (c config) targets() int {
	if len(c.scale) > 0 {
		return len(c.scale) + 1
	}
	return len(c.systems)
}

// estimate is roughly how long the throughput rounds take: every path on
// every system that measures it (a ws: path on wsSystemNames).
func (c config) estimate() time.Duration {
	var runs time.Duration
	for _, p := range c.paths {
		switch {
		case p.ws:
			runs += time.Duration(len(wsSystemNames(c.systems)))
		case len(c.scale) == 0 && slices.Contains(c.systems, sysBalancerJSON) && !measuredOn(sysBalancerJSON, p, c.paths):
			runs += time.Duration(c.targets() - 1)
		default:
			runs += time.Duration(c.targets())
		}
	}
	return runs*time.Duration(c.rounds)*c.duration + runs*c.warmup
}

func main() {
	if os.Getenv(benchRoleEnv) == wsEchoRole {
		os.Exit(wsEchoWorker()) // started by the bench as a worker
	}
	os.Exit(run())
}

// run is main with an exit status, so that deferred clean-up always runs.
func run() int {
	cfg, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 2
	}
	if cfg.load == loadGo {
		runtime.GOMAXPROCS(cfg.threads) // the generator's "threads"
	}
	if err := becomeSubreaper(); err != nil {
		fmt.Fprintln(os.Stderr, "bench: warning: cannot adopt orphans:", err)
	}
	defer reapDescendants()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	if err := bench(ctx, cfg); err != nil {
		if ctx.Err() != nil {
			err = errors.New("interrupted; every process it started was stopped")
		}
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	return 0
}
