package deploy

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// quickStart runs ../quick-start.sh with args and stdin, env on top of this
// process's (less the balancer's settings), and returns its exit code and
// output.
func quickStart(t *testing.T, stdin string, env []string, args ...string) (int, string) {
	t.Helper()
	script, err := filepath.Abs(filepath.Join(root, "quick-start.sh"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(script, args...)
	settings := readVars(t)
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if !settings[name] {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdin = strings.NewReader(stdin)
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-done:
		case <-time.After(2 * time.Minute):
			cmd.Process.Kill()
		}
	}()
	out, err := cmd.CombinedOutput()
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatal(err)
		}
	}
	return cmd.ProcessState.ExitCode(), string(out)
}

// running lists the processes whose program lies in dir.
func running(dir string) []string {
	var found []string
	procs, _ := filepath.Glob("/proc/[0-9]*/exe")
	for _, p := range procs {
		if exe, err := os.Readlink(p); err == nil && strings.HasPrefix(exe, dir+"/") {
			found = append(found, p+" -> "+exe)
		}
	}
	return found
}

// Issue 12: quick-start.sh single and cluster build the binaries, start
// the balancer with one worker or MAX_WORKERS of them, answer a request
// through it, and stop cleanly, leaving no process behind; the menu does
// the same as the argument.
func TestQuickStartLocal(t *testing.T) {
	for _, tc := range []struct {
		name, stdin string
		args        []string
		want        string
	}{
		{"single", "", []string{"single"}, "GET /admin/workers: 1 healthy worker(s)"},
		{"cluster", "", []string{"cluster"}, "GET /admin/workers: 2 healthy worker(s)"},
		{"menu", "2\n", nil, "GET /admin/workers: 2 healthy worker(s)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bin := t.TempDir()
			code, out := quickStart(t, tc.stdin, []string{"QUICK_START_SMOKE=1", "BIN=" + bin, "MAX_WORKERS=2",
				"LISTEN_ADDR=" + freeAddr(t), "ADMIN_ADDR=" + freeAddr(t)}, tc.args...)
			if code != 0 || !strings.Contains(out, tc.want) || !strings.Contains(out, `"status":"ok"`) || !strings.Contains(out, "stopped cleanly") {
				t.Fatalf("exit %d, want 0 and %q; output:\n%s", code, tc.want, out)
			}
			if left := running(bin); len(left) > 0 {
				t.Fatalf("left running: %v", left)
			}
		})
	}
}

// stubDocker puts a docker command first on PATH that records its
// arguments and answers `docker info` as an engine would (engine) or as a
// client without one does.
func stubDocker(t *testing.T, engine bool) (path, calls string) {
	t.Helper()
	dir := t.TempDir()
	calls = filepath.Join(dir, "calls")
	info := "exit 1"
	if engine {
		info = "exit 0"
	}
	stub := "#!/bin/sh\necho \"$*\" >>" + calls + "\n[ \"$1\" = info ] && " + info + "\nexit 0\n"
	if err := os.WriteFile(filepath.Join(dir, "docker"), []byte(stub), 0o755); err != nil {
		t.Fatal(err)
	}
	return "PATH=" + dir + ":" + os.Getenv("PATH"), calls
}

// Issue 12: without a Docker engine, quick-start.sh prod prints the
// compose command it would run, runs none, and exits 0.
func TestQuickStartProdWithoutEngine(t *testing.T) {
	path, calls := stubDocker(t, false)
	envFile := filepath.Join(t.TempDir(), ".env.prod")
	code, out := quickStart(t, "", []string{path, "PROD_ENV=" + envFile}, "prod")
	want := "docker compose -f docker-compose.prod.yml --env-file " + envFile + " up -d --build"
	if code != 0 || !strings.Contains(out, want) {
		t.Fatalf("exit %d, want 0 and %q; output:\n%s", code, want, out)
	}
	if b, _ := os.ReadFile(calls); strings.Contains(string(b), "compose") {
		t.Fatalf("ran docker %s", b)
	}
	if _, err := os.Stat(envFile); err == nil {
		t.Fatal("wrote an env file with nothing to run")
	}
}

// Issue 12: with an engine, quick-start.sh prod writes the env file with
// fresh secrets when there is none (and compose accepts it), then brings
// the stack up.
func TestQuickStartProdWithEngine(t *testing.T) {
	path, calls := stubDocker(t, true)
	envFile := filepath.Join(t.TempDir(), ".env.prod")
	code, out := quickStart(t, "", []string{path, "PROD_ENV=" + envFile}, "prod")
	b, _ := os.ReadFile(calls)
	want := "compose -f docker-compose.prod.yml --env-file " + envFile + " up -d --build"
	if code != 0 || !strings.Contains(string(b), want) {
		t.Fatalf("exit %d, docker called with %q, want %q; output:\n%s", code, b, want, out)
	}
	if st, err := os.Stat(envFile); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("env file: %v %v, want mode 0600", st, err)
	}
	p := mustLoad(t, stack{prodStack.files, envFile}) // no secret from anywhere else
	if tok := environ(p.Services["balancer"])["ADMIN_TOKEN"]; len(tok) < 32 {
		t.Fatalf("ADMIN_TOKEN %q, want a fresh random one", tok)
	}
}
