package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/procbal/procbal/shared/protocol"
)

// Names of the systems under test.
const (
	sysBalancer       = "balancer"
	sysBalancerStream = "balancer-stream" // the balancer with its buffering off
	sysBalancerJSON   = "balancer-json"   // the balancer with ACCESS_LOG=json
	sysNginx          = "nginx"
	sysHAProxy        = "haproxy"
	sysDirect         = "direct"
)

// allSystems is every system, in the order tables list them.
var allSystems = []string{sysBalancer, sysBalancerStream, sysBalancerJSON, sysNginx, sysHAProxy, sysDirect}

// wsSystemNames returns the systems a WebSocket path is measured on, of
// names: all but balancer-stream, whose buffering settings a tunnel never
// meets, and balancer-json, whose access log has one line per tunnel.
func wsSystemNames(names []string) []string {
	var out []string
	for _, n := range names {
		if n != sysBalancerStream && n != sysBalancerJSON {
			out = append(out, n)
		}
	}
	return out
}

// streamEnv turns the balancer's request and response buffering off for
// balancer-stream, so that bodies stream both ways as they arrive.
var streamEnv = []string{"REQUEST_BUFFERING=false", "RESPONSE_BUFFER=off"}

// accessLogEnv turns the access log on for balancer-json: one JSON line
// per request, written to its stdout (a log file of the run, on disk).
// The other balancers run with ACCESS_LOG=off, as nginx runs with
// access_log off.
var accessLogEnv = []string{"ACCESS_LOG=json"}

// kindOf returns the kind of the system named name: balancer-stream and
// balancer-json are balancers; every other name is its own kind.
func kindOf(name string) string {
	if name == sysBalancerStream || name == sysBalancerJSON {
		return sysBalancer
	}
	return name
}

// variantEnv returns the settings that make the system named name what it
// is on top of the balancer's defaults and -balancer-env: streamEnv for
// balancer-stream, accessLogEnv for balancer-json, none for the others.
func variantEnv(name string) []string {
	switch name {
	case sysBalancerStream:
		return streamEnv
	case sysBalancerJSON:
		return accessLogEnv
	}
	return nil
}

// accessLogPath returns the path balancer-json is measured on: the first
// GET path of paths (the access log's cost is per request, so the
// cheapest answer shows it most), or nil when there is none.
func accessLogPath(paths []pathSpec) *pathSpec {
	for i := range paths {
		if !paths[i].ws && paths[i].body == 0 {
			return &paths[i]
		}
	}
	return nil
}

// measuredOn reports whether the system named name loads path p of paths:
// balancer-json only on accessLogPath, every other system on all.
func measuredOn(name string, p pathSpec, paths []pathSpec) bool {
	if name != sysBalancerJSON {
		return true
	}
	a := accessLogPath(paths)
	return a != nil && a.spec == p.spec
}

// startupTimeout bounds how long any system may take to become ready.
const startupTimeout = 30 * time.Second

// system is one target under test, started and answering.
type system struct {
	name     string  // unique: a sys* constant, or scaleName(n) in scaling mode
	kind     string  // the sys* constant: what kind of system it is
	baseURL  string  // http://127.0.0.1:port
	adminURL string  // the balancer's admin API; empty for the others
	procs    []*proc // everything started for it, in start order
	proxy    *proc   // the proxy's main process; nil for direct
}

// proxyPIDs returns the processes whose CPU and memory count as the
// proxy's: the main process and what it forked (nginx's workers). The
// balancer's workers are excluded: it runs them as programs of their own,
// like the upstreams of nginx and HAProxy.
func (s *system) proxyPIDs() []int {
	if s.proxy == nil {
		return nil
	}
	if s.kind == sysBalancer {
		return []int{s.proxy.PID()}
	}
	return append([]int{s.proxy.PID()}, descendantsOf(s.proxy.PID())...)
}

// alive returns an error naming the first of the system's processes that
// has exited.
func (s *system) alive() error {
	for _, p := range s.procs {
		if p.exited() {
			return p.failure(fmt.Errorf("exited (code %d)", p.cmd.ProcessState.ExitCode()))
		}
	}
	return nil
}

// stop ends the system's processes, the proxy first.
func (s *system) stop() {
	for i := len(s.procs) - 1; i >= 0; i-- {
		s.procs[i].stop()
	}
}

// setup is what every system's start needs.
type setup struct {
	cfg       config
	tools     tools
	dir       string // private temp dir: sockets, configs
	logDir    string
	workerEnv []string // extra environment of the workers (and so of the balancer, which passes it on)
}

// startSystem starts the named system and waits until it answers.
func startSystem(ctx context.Context, su setup, name string) (*system, error) {
	s := &system{name: name, kind: kindOf(name)}
	var err error
	switch s.kind {
	case sysBalancer:
		err = startBalancer(ctx, su, s)
	case sysNginx, sysHAProxy:
		err = startFronted(ctx, su, s)
	case sysDirect:
		err = startDirect(ctx, su, s)
	default:
		err = fmt.Errorf("unknown system %q", name)
	}
	if err != nil {
		s.stop()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	return s, nil
}

// startFronted starts N workers on unix sockets and nginx or HAProxy in
// front of them.
func startFronted(ctx context.Context, su setup, s *system) error {
	socks, err := startSocketWorkers(ctx, su, s)
	if err != nil {
		return err
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	dir := filepath.Join(su.dir, s.name)
	var argv []string
	if s.name == sysNginx {
		argv, err = nginxCommand(su, dir, port, socks)
	} else {
		argv, err = haproxyCommand(su, dir, port, socks)
	}
	if err != nil {
		return err
	}
	p, err := startProc(s.name, su.logDir, nil, argv...)
	if err != nil {
		return err
	}
	s.procs, s.proxy = append(s.procs, p), p
	s.baseURL = "http://127.0.0.1:" + strconv.Itoa(port)
	return waitReady(ctx, p, func() error { return getOK(localClient, s.baseURL+"/api/health") })
}

// startSocketWorkers starts cfg.workers workers, each on its own unix
// socket in a directory of the system's, and waits for their /healthz.
func startSocketWorkers(ctx context.Context, su setup, s *system) ([]string, error) {
	dir := filepath.Join(su.dir, s.name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	var socks []string
	for i := 1; i <= su.cfg.workers; i++ {
		sock := filepath.Join(dir, "w"+strconv.Itoa(i)+".sock")
		// The same GOMAXPROCS the balancer gives each of its workers, so
		// every proxy fronts identical workers.
		procs := protocol.WorkerProcs(runtime.NumCPU(), su.cfg.workers)
		env := []string{"WORKER_SOCKET=" + sock, "WORKER_ID=" + strconv.Itoa(i), "GOMAXPROCS=" + strconv.Itoa(procs)}
		env = append(env, su.workerEnv...)
		p, err := startProc(fmt.Sprintf("%s-worker%d", s.name, i), su.logDir, env, su.tools.worker)
		if err != nil {
			return nil, err
		}
		s.procs = append(s.procs, p)
		c := unixClient(sock)
		if err := waitReady(ctx, p, func() error { return getOK(c, "http://worker/healthz") }); err != nil {
			return nil, err
		}
		socks = append(socks, sock)
	}
	return socks, nil
}

// startDirect starts one worker on a loopback TCP port: the no-proxy limit.
func startDirect(ctx context.Context, su setup, s *system) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	env := append([]string{"WORKER_ADDR=" + addr, "WORKER_ID=1"}, su.workerEnv...)
	p, err := startProc("direct-worker", su.logDir, env, su.tools.worker)
	if err != nil {
		return err
	}
	s.procs = append(s.procs, p)
	s.baseURL = "http://" + addr
	return waitReady(ctx, p, func() error { return getOK(localClient, s.baseURL+"/healthz") })
}

// startBalancer starts our balancer with su.cfg.workers workers and waits
// until all of them are healthy. -balancer-env comes after its defaults and
// the variant's settings (variantEnv) after that, so they win.
func startBalancer(ctx context.Context, su setup, s *system) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	admin, err := freePort()
	if err != nil {
		return err
	}
	env := []string{
		"LISTEN_ADDR=127.0.0.1:" + strconv.Itoa(port),
		"ADMIN_ADDR=127.0.0.1:" + strconv.Itoa(admin),
		"MAX_WORKERS=" + strconv.Itoa(su.cfg.workers),
		"WORKER_CMD=" + su.tools.worker,
		"LOG_LEVEL=warn",
		"ACCESS_LOG=off",   // as nginx's access_log off; balancer-json turns it on
		"TMPDIR=" + su.dir, // its socket directory lands in ours
	}
	env = append(env, su.workerEnv...)
	env = append(append(env, su.cfg.balancerEnv...), variantEnv(s.name)...)
	p, err := startProc(s.name, su.logDir, env, su.tools.balancer)
	if err != nil {
		return err
	}
	s.procs, s.proxy = append(s.procs, p), p
	s.baseURL = "http://127.0.0.1:" + strconv.Itoa(port)
	s.adminURL = "http://127.0.0.1:" + strconv.Itoa(admin)
	return waitReady(ctx, p, func() error {
		if err := balancerHealthy(s.adminURL, su.cfg.workers); err != nil {
			return err
		}
		return getOK(localClient, s.baseURL+"/api/health")
	})
}

// balancerHealthy checks /admin/health and that want workers are healthy.
func balancerHealthy(adminURL string, want int) error {
	if err := getOK(localClient, adminURL+"/admin/health"); err != nil {
		return err
	}
	doc, err := getWorkers(adminURL)
	if err != nil {
		return err
	}
	if doc.Totals.Healthy != want {
		return fmt.Errorf("%d of %d workers healthy", doc.Totals.Healthy, want)
	}
	return nil
}

// localClient talks to loopback targets during setup and checks.
var localClient = &http.Client{Timeout: 5 * time.Second}

// unixClient returns a client whose every request goes to the unix socket.
func unixClient(sock string) *http.Client {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}
	return &http.Client{Transport: tr, Timeout: 5 * time.Second}
}

// getOK returns nil when GET url answers 200.
func getOK(c *http.Client, url string) error {
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

// waitReady polls check until it succeeds, p exits, or startupTimeout.
func waitReady(ctx context.Context, p *proc, check func() error) error {
	deadline := time.Now().Add(startupTimeout)
	for {
		err := check()
		switch {
		case err == nil:
			return nil
		case p.exited():
			return p.failure(fmt.Errorf("exited during start-up (code %d)", p.cmd.ProcessState.ExitCode()))
		case time.Now().After(deadline):
			return p.failure(fmt.Errorf("not ready after %s: %w", startupTimeout, err))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// splitList splits a comma list, dropping blanks.
func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
