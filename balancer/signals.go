//go:build linux

package main

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/procbal/procbal/balancer/supervisor"
)

// The balancer's signals besides serve's (TERM, INT, HUP) and USR1's log
// rotation (logfile.go): TTIN and TTOU add and remove a local worker, as
// gunicorn's do, and the signals it gives no meaning are logged, once
// each, rather than ignored silently.

// ignoredSignals are caught only to be logged: each would otherwise pass
// unnoticed (WINCH) or be taken for another program's meaning (gunicorn's
// USR2 upgrades its binary, its WINCH stops the workers).
var ignoredSignals = map[os.Signal]string{
	syscall.SIGUSR2:  "no binary upgrade here: start the new balancer beside the old one, or SIGHUP for a rolling reload of the workers",
	syscall.SIGWINCH: "no meaning here (gunicorn's WINCH stops the workers: use SIGTTOU or /admin/scale)",
}

// signalNames names the signals handled here as kill -l does; String()
// would say "stopped (tty input)".
var signalNames = map[os.Signal]string{
	syscall.SIGTTIN: "SIGTTIN", syscall.SIGTTOU: "SIGTTOU", syscall.SIGUSR2: "SIGUSR2", syscall.SIGWINCH: "SIGWINCH",
}

// scaleRetry is the wait before asking again to scale while another scale
// or reload runs.
const scaleRetry = 100 * time.Millisecond

// handleSignals starts the goroutines that act on TTIN and TTOU and log
// the ignored signals.
func (a *app) handleSignals() {
	sigs := make(chan os.Signal, 16)
	notify := []os.Signal{syscall.SIGTTIN, syscall.SIGTTOU}
	for sig := range ignoredSignals {
		notify = append(notify, sig)
	}
	signal.Notify(sigs, notify...)
	deltas := make(chan int, 256)
	go a.scaleBySignals(deltas)
	go func() {
		logged := map[os.Signal]bool{}
		for sig := range sigs {
			switch sig {
			case syscall.SIGTTIN, syscall.SIGTTOU:
				d := 1
				if sig == syscall.SIGTTOU {
					d = -1
				}
				a.log.Info("signal received, scaling by one", "signal", signalNames[sig], "by", d)
				select {
				case deltas <- d:
				default:
					a.log.Warn("too many scaling signals waiting, this one is dropped", "signal", signalNames[sig])
				}
			default:
				if logged[sig] {
					a.log.Debug("signal ignored", "signal", signalNames[sig])
					continue
				}
				logged[sig] = true
				a.log.Info("signal ignored (logged once)", "signal", signalNames[sig], "why", ignoredSignals[sig])
			}
		}
	}()
}

// scaleBySignals applies the deltas of TTIN (+1) and TTOU (-1), one scale
// at a time: signals that arrive while a scale runs are summed and
// applied after it, so TTIN, TTIN, TTOU end one worker up however fast
// they come. A scale or reload from the admin API that runs meanwhile is
// waited for, not refused (the API's 409 is for people, who can retry).
func (a *app) scaleBySignals(deltas <-chan int) {
	for d := range deltas {
		d += drain(deltas)
		if d == 0 {
			continue
		}
		a.scaleBy(d, deltas)
	}
}

// drain returns the sum of the deltas waiting.
func drain(deltas <-chan int) int {
	sum := 0
	for {
		select {
		case d := <-deltas:
			sum += d
		default:
			return sum
		}
	}
}

// scaleBy scales the local workers by d, within [1, WORKER_LIMIT] (0 with
// remote upstreams, as /admin/scale), and returns once done or failed.
func (a *app) scaleBy(d int, deltas <-chan int) {
	lo, hi := 1, a.cfg.scaleLimit()
	if a.cfg.remotes() { // UPSTREAMS or UPSTREAMS_FILE: remote upstreams may serve alone
		lo = 0
	}
	waited := false
	for d != 0 {
		from := a.sup.Active()
		to := min(max(from+d, lo), hi)
		if to == from {
			a.log.Warn("scaling by signal: at the limit, nothing to do", "workers", from, "min", lo, "max", hi)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), a.cfg.WorkerStartTime+5*time.Second)
		err := a.sup.Scale(ctx, to)
		cancel()
		switch {
		case errors.Is(err, supervisor.ErrBusy):
			if !waited {
				a.log.Info("scaling by signal waits for the running scale or reload")
				waited = true
			}
			time.Sleep(scaleRetry)
			d += drain(deltas)
			continue
		case err != nil:
			a.log.Error("scaling by signal failed", "from", from, "to", to, "error", err)
			return
		}
		a.log.Info("scaled by signal", "from", from, "to", to)
		return
	}
}
