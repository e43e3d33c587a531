package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// stopGrace is how long a process gets between SIGTERM and SIGKILL.
const stopGrace = 5 * time.Second

// proc is a child process the harness started, in a process group of its own
// so that a signal reaches everything it forked.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	once    sync.Once
}

// startProc starts argv with extra environment, output to logDir/name.log.
func startProc(name, logDir string, env []string, argv ...string) (*proc, error) {
	logPath := filepath.Join(logDir, name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child keeps its own descriptor
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(cleanEnv(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	return p, nil
}

// cleanEnv is the harness's environment without the settings that would
// change how a worker or the balancer listens, or how many cores it uses
// (GOMAXPROCS: direct uses them all; -balancer-env can still set one).
func cleanEnv() []string {
	drop := []string{"WORKER_SOCKET=", "WORKER_ADDR=", "WORKER_ID=", "LISTEN_ADDR=",
		"ADMIN_ADDR=", "ADMIN_TOKEN=", "MAX_WORKERS=", "WORKER_CMD=", "UPSTREAMS=", "LOG_LEVEL=", "GOMAXPROCS="}
	var out []string
next:
	for _, kv := range os.Environ() {
		for _, d := range drop {
			if strings.HasPrefix(kv, d) {
				continue next
			}
		}
		out = append(out, kv)
	}
	return out
}

// PID returns the process id.
func (p *proc) PID() int { return p.cmd.Process.Pid }

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the process group, then SIGKILL after stopGrace.
func (p *proc) stop() {
	p.once.Do(func() {
		pgid := p.PID()
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(stopGrace):
			fmt.Fprintf(os.Stderr, "bench: %s ignored SIGTERM for %s, killing it\n", p.name, stopGrace)
		}
		// Anything left in the group (a forked worker, say) goes too.
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	})
}

// logTail returns the last lines of the process's log, for error messages.
func (p *proc) logTail() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return strings.Join(lines, "\n")
}

// failure wraps err with the process's log tail.
func (p *proc) failure(err error) error {
	tail := p.logTail()
	if tail == "" {
		return fmt.Errorf("%s: %w", p.name, err)
	}
	return fmt.Errorf("%s: %w\n--- %s ---\n%s", p.name, err, p.logPath, tail)
}

// PR_SET_CHILD_SUBREAPER from <linux/prctl.h>.
const prSetChildSubreaper = 36

// becomeSubreaper makes the harness adopt orphaned descendants (workers whose
// balancer died, say), so that reapDescendants can still find and end them.
func becomeSubreaper() error {
	_, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// reapDescendants ends every process still descending from the harness:
// SIGTERM, a grace period, then SIGKILL.
func reapDescendants() {
	left := descendantsOf(os.Getpid())
	if len(left) == 0 {
		return
	}
	for _, pid := range left {
		_ = syscall.Kill(pid, syscall.SIGTERM)
	}
	deadline := time.Now().Add(stopGrace)
	for time.Now().Before(deadline) && len(descendantsOf(os.Getpid())) > 0 {
		time.Sleep(50 * time.Millisecond)
	}
	for _, pid := range descendantsOf(os.Getpid()) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	reapZombies()
}

// reapZombies collects exited adopted children so they leave no zombie.
func reapZombies() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if pid <= 0 || errors.Is(err, syscall.ECHILD) {
			return
		}
	}
}
