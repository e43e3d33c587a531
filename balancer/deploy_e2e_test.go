package main

// Issue 12: what the images and their operators rely on: the healthcheck
// and version subcommands, LOG_FILE rotated on SIGUSR1, log bounds checked
// at start.

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// subcmd runs a built binary's subcommand with only env, and returns its
// exit code and output.
func subcmd(t *testing.T, bin string, env []string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), string(out)
}

// Issue 12: `balancer healthcheck` (the images' HEALTHCHECK) exits 0 while
// the admin API reports a healthy upstream, with ADMIN_TOKEN, also on a
// wildcard ADMIN_ADDR as in the compose stacks; else 1 with one line.
func TestHealthcheckSubcommand(t *testing.T) {
	t.Parallel()
	port := strings.TrimPrefix(freePort(t), "127.0.0.1:")
	b := launch(t, "ADMIN_ADDR=0.0.0.0:"+port, "ADMIN_TOKEN=s3cret")
	env := []string{"ADMIN_ADDR=0.0.0.0:" + port, "ADMIN_TOKEN=s3cret"}
	waitFor(t, 15*time.Second, "balancer healthcheck to pass", func() bool {
		code, _ := subcmd(t, bins.balancer, env, "healthcheck")
		return code == 0
	})
	if code, out := subcmd(t, bins.balancer, env[:1], "healthcheck"); code != 1 || strings.Count(strings.TrimSpace(out), "\n") != 0 || !strings.Contains(out, "401") {
		t.Errorf("without the token: exit %d, output %q; want 1 and one line with the 401", code, out)
	}
	b.cmd.Process.Signal(syscall.SIGTERM)
	b.waitExit(15 * time.Second)
	if code, out := subcmd(t, bins.balancer, env, "healthcheck"); code != 1 || !strings.Contains(out, "balancer healthcheck:") {
		t.Errorf("balancer stopped: exit %d, output %q; want 1 and a reason", code, out)
	}
}

// Issue 12: `worker healthcheck` (the worker image's HEALTHCHECK) exits 0
// while a worker answers /healthz on WORKER_ADDR, else 1.
func TestWorkerHealthcheckSubcommand(t *testing.T) {
	t.Parallel()
	addr := freePort(t)
	w := exec.Command(bins.worker)
	w.Env = []string{"WORKER_ADDR=" + addr}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { w.Process.Kill(); w.Wait() }()
	env := []string{"WORKER_ADDR=:" + strings.TrimPrefix(addr, "127.0.0.1:")}
	waitFor(t, 10*time.Second, "worker healthcheck to pass", func() bool {
		code, _ := subcmd(t, bins.worker, env, "healthcheck")
		return code == 0
	})
	w.Process.Kill()
	w.Wait()
	if code, out := subcmd(t, bins.worker, env, "healthcheck"); code != 1 || !strings.Contains(out, "worker healthcheck:") {
		t.Errorf("worker stopped: exit %d, output %q; want 1 and a reason", code, out)
	}
}

// Issue 12: the images' VERSION build argument reaches both binaries
// through -ldflags -X main.version.
func TestVersionStamped(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := gobuild("-ldflags=-X main.version=v9.8.7", "-o", dir+"/", ".", "../worker"); err != nil {
		t.Fatal(err)
	}
	for _, bin := range []string{"balancer", "worker"} {
		if code, out := subcmd(t, filepath.Join(dir, bin), nil, "version"); code != 0 || strings.TrimSpace(out) != "v9.8.7" {
			t.Errorf("%s version: exit %d, %q", bin, code, out)
		}
	}
	if code, out := subcmd(t, bins.balancer, nil, "version"); code != 0 || strings.TrimSpace(out) != "dev" {
		t.Errorf("unstamped balancer version: exit %d, %q, want dev", code, out)
	}
}

// Issue 12: SIGUSR1 rotates LOG_FILE: after logrotate moved it, a new file
// is opened at its path; with it in place, it is rotated beside itself. The
// balancer serves on throughout.
func TestLogFileRotatesOnSIGUSR1(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "balancer.log")
	b := startBalancer(t, 2, "LOG_FILE="+path, "LOG_MAX_FILES=2")
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	b.cmd.Process.Signal(syscall.SIGUSR1)
	waitFor(t, 10*time.Second, "a new log file", func() bool {
		data, _ := os.ReadFile(path)
		return strings.Contains(string(data), "log file rotated")
	})
	if old, _ := os.ReadFile(path + ".1"); !strings.Contains(string(old), "balancer listening") {
		t.Fatalf("the moved file lost its lines: %q", old)
	}
	b.cmd.Process.Signal(syscall.SIGUSR1)
	waitFor(t, 10*time.Second, "a rotated log file", func() bool {
		rotated, _ := filepath.Glob(filepath.Join(filepath.Dir(path), "balancer-*.log"))
		return len(rotated) == 1
	})
	if _, err := b.health(); err != nil {
		t.Fatalf("after two SIGUSR1: %v", err)
	}
}

// Issue 12: without LOG_FILE, SIGUSR1 (whose default action kills) is
// logged and ignored.
func TestSIGUSR1WithoutLogFile(t *testing.T) {
	t.Parallel()
	b := startBalancer(t, 2)
	b.cmd.Process.Signal(syscall.SIGUSR1)
	waitFor(t, 10*time.Second, "the SIGUSR1 line", func() bool {
		return strings.Contains(b.out.String(), "no LOG_FILE to rotate")
	})
	if _, err := b.health(); err != nil {
		t.Fatalf("after SIGUSR1: %v", err)
	}
}

// Issue 12: bad log bounds, and a LOG_FILE that cannot be written, stop
// the start with one line naming the variable.
func TestLogSettingsRefused(t *testing.T) {
	t.Parallel()
	notDir := filepath.Join(t.TempDir(), "file")
	os.WriteFile(notDir, nil, 0o600)
	for _, tc := range []struct{ env, name string }{
		{"LOG_MAX_SIZE_MB=0", "LOG_MAX_SIZE_MB"},
		{"LOG_MAX_SIZE_MB=big", "LOG_MAX_SIZE_MB"},
		{"LOG_MAX_FILES=0", "LOG_MAX_FILES"},
		{"LOG_MAX_AGE_DAYS=-1", "LOG_MAX_AGE_DAYS"},
		{"LOG_FILE=" + filepath.Join(notDir, "b.log"), "LOG_FILE"},
	} {
		t.Run(tc.env, func(t *testing.T) {
			t.Parallel()
			b := launch(t, tc.env)
			code := b.waitExit(10 * time.Second)
			out := strings.TrimSpace(b.out.String())
			if code != 2 || strings.Count(out, "\n") != 0 || !strings.Contains(out, tc.name) {
				t.Fatalf("exit %d, output %q: want 2 and one line naming %s", code, out, tc.name)
			}
		})
	}
}
