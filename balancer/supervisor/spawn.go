package supervisor

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/procbal/procbal/balancer/pool"
	"github.com/procbal/procbal/shared/protocol"
)

// spawn starts one worker process for sl and its health checker. The
// process joins the pool as Starting; the checker makes it Healthy after its
// first good probe.
func (s *Supervisor) spawn(sl *slot) (*proc, error) {
	s.spawned++
	base := filepath.Join(s.cfg.SocketDir, fmt.Sprintf("w%d-%d", sl.id, s.spawned))
	share := s.share()
	p := &proc{slot: sl, gen: s.target.gen, socket: base + ".sock", report: base + ".rpt", maxRequests: s.requestLimit(),
		db: dbShare{held: share, set: share}}
	cmd := exec.Command(s.cfg.Command, s.cfg.Args...)
	cmd.Env = s.workerEnv(sl.id, p)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Die with the balancer, even when it is SIGKILLed.
		Pdeathsig: syscall.SIGKILL,
		// Own process group: a terminal's Ctrl-C reaches the balancer
		// only, which then stops the workers in order.
		Setpgid: true,
	}
	stdout, stderr, err := startWithPipes(cmd)
	if err != nil {
		return nil, fmt.Errorf("starting %s: %w", s.cfg.Command, err)
	}
	p.cmd, p.pid, p.started = cmd, cmd.Process.Pid, time.Now()
	p.log = s.log.Named("worker").With("worker_id", sl.id, "pid", p.pid)
	relayed := relayOutput(p, stdout, stderr)
	s.track(p)
	go s.wait(p, relayed)
	return p, nil
}

// startWithPipes starts cmd with its stdout and stderr on pipes of our
// own, not StdoutPipe: Wait would close those while the relay still reads,
// losing a dying worker's last lines.
func startWithPipes(cmd *exec.Cmd) (stdout, stderr *os.File, err error) {
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return nil, nil, err
	}
	cmd.Stdout, cmd.Stderr = outW, errW
	err = cmd.Start()
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		return nil, nil, err
	}
	return outR, errR, nil
}

// track makes the process's upstream, enters it in the table and starts
// its checker. checkTimers kills it if it is not healthy within
// StartTimeout.
func (s *Supervisor) track(p *proc) {
	u := pool.NewUpstream(p.slot.id, pool.Local, "unix:"+p.socket)
	u.PID, u.ReportSocket, u.StartedAt = p.pid, p.report, p.started
	p.up = u
	p.slot.last = u
	s.procs[p.pid] = p
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	go s.checker.Watch(ctx, u)
	p.log.Info("worker started", "socket", p.socket, "generation", p.gen)
}

// secretEnv names the balancer's own secrets, which workers never inherit:
// with ADMIN_TOKEN, application code could scale or reload the balancer.
// STICKY_SECRET is denied ahead of the setting that will use it.
var secretEnv = []string{"ADMIN_TOKEN", "STICKY_SECRET"}

// workerEnv is the balancer's environment, less its secrets and the
// variables EnvDeny names, plus the worker contract. Later entries win
// over inherited ones of the same name (exec.Cmd keeps the last).
func (s *Supervisor) workerEnv(id int, p *proc) []string {
	env := append(s.inheritedEnv(),
		protocol.EnvSocket+"="+p.socket,
		protocol.EnvReportSocket+"="+p.report,
		protocol.EnvID+"="+strconv.Itoa(id),
		protocol.EnvHealthPath+"="+s.cfg.HealthPath,
	)
	if !hasValue(env, "GOMAXPROCS") {
		// An operator's GOMAXPROCS is inherited (unless denied); else each
		// Go worker gets its share of the cores.
		env = append(env, "GOMAXPROCS="+strconv.Itoa(protocol.WorkerProcs(runtime.NumCPU(), s.target.count)))
	}
	if s.cfg.MemoryLimitMB > 0 {
		env = append(env, "GOMEMLIMIT="+strconv.Itoa(s.cfg.MemoryLimitMB)+"MiB")
	}
	if s.cfg.DBMaxConns > 0 {
		// Its share of DB_MAX_CONNS; it overrides an inherited one.
		env = append(env, protocol.EnvDBPoolMax+"="+strconv.Itoa(p.db.set))
	}
	return env
}

// inheritedEnv is the balancer's environment without secretEnv and the
// variables EnvDeny names.
func (s *Supervisor) inheritedEnv() []string {
	return slices.DeleteFunc(os.Environ(), func(kv string) bool {
		name, _, _ := strings.Cut(kv, "=")
		return slices.Contains(secretEnv, name) || slices.Contains(s.cfg.EnvDeny, name)
	})
}

// hasValue reports whether env sets name to something not empty.
func hasValue(env []string, name string) bool {
	return slices.ContainsFunc(env, func(kv string) bool {
		k, v, _ := strings.Cut(kv, "=")
		return k == name && v != ""
	})
}
