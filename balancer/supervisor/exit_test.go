package supervisor

import (
	"os/exec"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// exitOf runs script with sh and returns its Wait error.
func exitOf(t *testing.T, script string) error {
	t.Helper()
	err := exec.Command("sh", "-c", script).Run()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatal(err)
	}
	return err
}

// Log hygiene: a worker that dies of the SIGTERM we sent (a program that
// does not handle it) stopped as asked, which is info; an exit 0 nobody
// asked for is respawned like a crash, which is a warning.
func TestExitLineLevels(t *testing.T) {
	tests := []struct {
		name     string
		script   string
		stopping bool
		killed   bool
		ready    bool
		level    hclog.Level
		msg      string
	}{
		{"sigterm we sent", "kill -TERM $$", true, false, true, hclog.Info, "worker stopped by SIGTERM"},
		{"shell exit for sigterm", "exit 143", true, false, true, hclog.Info, "worker stopped by SIGTERM"},
		{"exit 0 asked for", "exit 0", true, false, true, hclog.Info, "worker exited"},
		{"exit 0 not asked for", "exit 0", false, false, true, hclog.Warn, "worker exited without being asked to"},
		{"sigterm from elsewhere", "kill -TERM $$", false, false, true, hclog.Warn, "worker killed by signal"},
		{"sigkill from elsewhere", "kill -KILL $$", false, false, true, hclog.Error, "worker killed by signal, perhaps out of memory"},
		{"sigkill we sent", "kill -KILL $$", false, true, false, hclog.Warn, "worker killed by signal"},
		{"failed boot", "exit 3", false, false, false, hclog.Error, "worker exited before it was ready"},
		{"crash", "exit 2", false, false, true, hclog.Warn, "worker exited"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &proc{started: time.Now(), stopping: tt.stopping, killed: tt.killed, ready: tt.ready}
			level, msg, _ := exitLine(p, exitOf(t, tt.script))
			if level != tt.level || msg != tt.msg {
				t.Fatalf("got %s %q, want %s %q", level, msg, tt.level, tt.msg)
			}
		})
	}
}

func TestExitText(t *testing.T) {
	if got := exitText(nil); got != "exit status 0" {
		t.Fatalf("exitText(nil) = %q", got)
	}
	if got := exitText(exitOf(t, "exit 3")); got != "exit status 3" {
		t.Fatalf("exitText(exit 3) = %q", got)
	}
}

// Recycles back off like crashes: none before the first, then 100ms
// doubling, forgiven after StablePeriod without a recycle.
func TestRecycleBackoff(t *testing.T) {
	s := &Supervisor{cfg: Config{StablePeriod: 10 * time.Second}}
	sl := &slot{id: 1}
	p := &proc{slot: sl, ready: true}
	sl.cur = p
	if !s.mayRecycle(p) {
		t.Fatal("first recycle held back")
	}
	for n, wait := range []time.Duration{100, 200, 400, 800} {
		sl.recycles = n + 1
		sl.lastRecycle = time.Now().Add(-wait*time.Millisecond + 20*time.Millisecond)
		if s.mayRecycle(p) {
			t.Fatalf("recycle %d allowed %s after the last, want %dms", n+2, wait*time.Millisecond-20*time.Millisecond, wait)
		}
		sl.lastRecycle = time.Now().Add(-wait * time.Millisecond)
		if !s.mayRecycle(p) {
			t.Fatalf("recycle %d held back after %dms", n+2, wait)
		}
	}
	sl.recycles = 30
	sl.lastRecycle = time.Now().Add(-s.cfg.StablePeriod)
	if !s.mayRecycle(p) || sl.recycles != 0 {
		t.Fatalf("not forgiven after StablePeriod: recycles %d", sl.recycles)
	}
	s.op = &opRequest{kind: opReload}
	if s.mayRecycle(p) {
		t.Fatal("recycle allowed while a reload runs")
	}
}
