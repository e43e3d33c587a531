package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Workers get the balancer's environment less its secrets: ADMIN_TOKEN,
// STICKY_SECRET and what WORKER_ENV_DENY names. The balancer keeps them.
func TestWorkerEnvWithoutSecrets(t *testing.T) {
	t.Parallel()
	record := filepath.Join(t.TempDir(), "env")
	// The worker writes its environment, then runs as the reference worker.
	cmd := script(t, fmt.Sprintf(`env > '%[1]s.tmp' && mv '%[1]s.tmp' '%[1]s' && exec '%[2]s'`, record, bins.worker))
	b := launch(t, "WORKER_CMD="+cmd, "MAX_WORKERS=1", "ADMIN_TOKEN=secret", "STICKY_SECRET=x",
		"WORKER_ENV_DENY=FOO_SECRET", "FOO_SECRET=y", "KEEP_ME=1", "DB_POOL_MAX=99")
	waitFor(t, 15*time.Second, "a healthy worker", func() bool { return b.tokenGet("/admin/health", "secret") == 200 })
	if code := b.tokenGet("/admin/health", ""); code != 401 {
		t.Fatalf("admin without the token: %d, want 401 (the balancer keeps ADMIN_TOKEN)", code)
	}
	env := readEnv(t, record)
	for _, name := range []string{"ADMIN_TOKEN", "STICKY_SECRET", "FOO_SECRET"} {
		if v, ok := env[name]; ok {
			t.Errorf("worker inherited %s=%s", name, v)
		}
	}
	// DB_POOL_MAX is its share of DB_MAX_CONNS (20 / (1+1)), not the one
	// it would inherit.
	for name, want := range map[string]string{"KEEP_ME": "1", "WORKER_ID": "1", "HEALTH_PATH": "/healthz", "DB_POOL_MAX": "10"} {
		if env[name] != want {
			t.Errorf("worker has %s=%q, want %q", name, env[name], want)
		}
	}
	if env["WORKER_SOCKET"] == "" {
		t.Errorf("worker lacks WORKER_SOCKET")
	}
}

// readEnv parses the output of env(1) into a map.
func readEnv(t *testing.T, path string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			env[k] = v
		}
	}
	return env
}

// Each bad WORKER_ENV_DENY stops the start with exit code 2 and one line
// naming it.
func TestWorkerEnvDenyBadNamesRefused(t *testing.T) {
	t.Parallel()
	for _, v := range []string{"FOO=BAR", "FOO BAR", "FOO, BAR", " FOO", "FOO\tBAR", "FOO,,BAR", "FOO,", ","} {
		t.Run(v, func(t *testing.T) {
			t.Parallel()
			b := launch(t, "WORKER_ENV_DENY="+v)
			code := b.waitExit(10 * time.Second)
			out := strings.TrimSpace(b.out.String())
			if code != 2 || strings.Count(out, "\n") != 0 || !strings.Contains(out, "WORKER_ENV_DENY") {
				t.Fatalf("exit %d, output %q: want 2 and one line naming WORKER_ENV_DENY", code, out)
			}
		})
	}
}
