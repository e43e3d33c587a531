package supervisor

import (
	"errors"
	"os/exec"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
)

// logExit says how a worker ended: signal or exit code, and what that
// likely means. quiet logs it at debug: a crash loop is reported by
// reportCrashLoop instead.
func (s *Supervisor) logExit(p *proc, err error, quiet bool) {
	level, msg, args := exitLine(p, err)
	if quiet {
		level = hclog.Debug
	}
	p.log.Log(level, msg, args...)
}

// exitLine classifies an exit. An exit the supervisor asked for (SIGTERM,
// then the worker's own exit 0, or its death by that SIGTERM, the default
// for programs that do not handle it, or 128+15 from a shell) is info. An
// exit 0 nobody asked for is a warning: the worker is respawned like after
// a crash, and a server that returns on its own is a bug (gunicorn and PM2
// restart it too).
func exitLine(p *proc, err error) (hclog.Level, string, []any) {
	ran := time.Since(p.started).Round(time.Millisecond)
	if err == nil {
		if p.stopping {
			return hclog.Info, "worker exited", []any{"code", 0, "ran", ran, "requested", true}
		}
		return hclog.Warn, "worker exited without being asked to", []any{"code", 0, "ran", ran}
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return hclog.Error, "waiting for worker failed", []any{"error", err}
	}
	ws, _ := ee.Sys().(syscall.WaitStatus)
	requested := p.stopping || p.killed
	switch {
	case p.stopping && terminated(ws):
		return hclog.Info, "worker stopped by SIGTERM", []any{"ran", ran, "requested", true}
	case ws.Signaled() && ws.Signal() == syscall.SIGKILL && !requested:
		return hclog.Error, "worker killed by signal, perhaps out of memory", []any{"signal", ws.Signal().String(), "ran", ran}
	case ws.Signaled():
		return hclog.Warn, "worker killed by signal", []any{"signal", ws.Signal().String(), "ran", ran, "requested", requested}
	case !p.ready:
		return hclog.Error, "worker exited before it was ready", []any{"code", ws.ExitStatus(), "ran", ran}
	}
	return hclog.Warn, "worker exited", []any{"code", ws.ExitStatus(), "ran", ran, "requested", requested}
}

// terminated reports a death by SIGTERM, or a shell's exit status for it.
func terminated(ws syscall.WaitStatus) bool {
	if ws.Signaled() {
		return ws.Signal() == syscall.SIGTERM
	}
	return ws.Exited() && ws.ExitStatus() == 128+int(syscall.SIGTERM)
}

// exitText is an exit as /admin/workers shows it: "exit status 1",
// "signal: killed".
func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}
