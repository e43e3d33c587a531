package main

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/procbal/procbal/balancer/admin"
)

// Flags go anywhere on the line, as --flag value or --flag=value; a
// number such as -1 is scale's argument, not a flag; mistakes are usage
// errors (exit 2).
func TestCtlParse(t *testing.T) {
	t.Setenv("ADMIN_ADDR", "127.0.0.1:9")
	t.Setenv("ADMIN_TOKEN", "from-env")
	o, err := parseCtl([]string{"--json", "scale", "-1", "--token=flag", "--addr", "127.0.0.1:7", "--timeout", "3s"})
	if err != nil {
		t.Fatal(err)
	}
	if !o.json || o.token != "flag" || o.addr != "127.0.0.1:7" || o.timeout != 3*time.Second || !slices.Equal(o.args, []string{"scale", "-1"}) {
		t.Fatalf("parsed %+v", o)
	}
	o, err = parseCtl([]string{"top", "-n", "2", "--interval=50ms"})
	if err != nil || o.token != "from-env" || o.addr != "127.0.0.1:9" || o.count != 2 || o.interval != 50*time.Millisecond {
		t.Fatalf("parsed %+v, %v", o, err)
	}
	for _, args := range [][]string{{}, {"--bogus", "status"}, {"scale"}, {"scale", "many"}, {"recycle", "1", "2"},
		{"frobnicate"}, {"status", "--timeout"}, {"status", "--interval=-1s"}, {"--help"}} {
		var out, errOut bytes.Buffer
		if code := ctl(args, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "usage: balancer ctl") {
			t.Errorf("ctl %q: exit %d, stderr %q; want 2 with the usage", args, code, errOut.String())
		}
	}
}

// runCtl runs `balancer ctl args...` of the built binary with env.
func runCtl(t *testing.T, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(bins.balancer, append([]string{"ctl"}, args...)...)
	cmd.Env = env
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatal(err)
		}
	}
	return cmd.ProcessState.ExitCode(), out.String(), errOut.String()
}

// mustCtl runs ctl and fails unless it exits 0.
func mustCtl(t *testing.T, env []string, args ...string) string {
	t.Helper()
	code, out, errOut := runCtl(t, env, args...)
	if code != 0 {
		t.Fatalf("balancer ctl %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// Issue 14: `balancer ctl status|top|scale|reload|recycle|upstreams`
// against a real balancer, as tables and with --json; a wrong token exits
// 1 with the server's 401 message, and so does a refusal.
func TestCtlAgainstBalancer(t *testing.T) {
	t.Parallel()
	remote := startTestUpstream(t, "r", false)
	b := launch(t, "ADMIN_TOKEN=tok", "MAX_WORKERS=2", "UPSTREAMS="+remote)
	env := []string{"ADMIN_ADDR=" + b.admin, "ADMIN_TOKEN=tok"}
	waitFor(t, 15*time.Second, "2 workers and the remote healthy", func() bool {
		code, out, _ := runCtl(t, env, "status")
		return code == 0 && strings.Count(out, " healthy ") == 3
	})

	out := mustCtl(t, env, "status")
	t.Logf("balancer ctl status:\n%s", out)
	if !regexp.MustCompile(`(?m)^ID +KIND +STATE +PID +UPTIME +RESTARTS +RSS`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^1 +local +healthy +\d+ `).MatchString(out) ||
		!regexp.MustCompile(`(?m)^1001 +remote +healthy +- `).MatchString(out) ||
		!strings.Contains(out, "3 upstream(s), 3 healthy") {
		t.Fatalf("status table:\n%s", out)
	}
	for _, args := range [][]string{{"status", "--json"}, {"--json", "status"}} {
		var r admin.Report
		if err := json.Unmarshal([]byte(mustCtl(t, env, args...)), &r); err != nil || len(r.Workers) != 3 {
			t.Fatalf("ctl %q: %v %+v", args, err, r)
		}
	}

	for _, tc := range []struct{ arg, want string }{
		{"3", "scaled from 2 to 3 local worker(s)"},
		{"+1", "scaled from 3 to 4 local worker(s)"},
		{"-2", "scaled from 4 to 2 local worker(s)"},
	} {
		if out := mustCtl(t, env, "scale", tc.arg); strings.TrimSpace(out) != tc.want {
			t.Fatalf("ctl scale %s: %q, want %q", tc.arg, out, tc.want)
		}
	}
	// Scale down drained the oldest, 1 and 2: 3 and 4 are left.
	report := func() admin.Report {
		var r admin.Report
		if err := json.Unmarshal([]byte(mustCtl(t, env, "status", "--json")), &r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	waitFor(t, 15*time.Second, "workers 3 and 4 and the remote, healthy", func() bool {
		r := report()
		return r.Totals.Workers == 3 && r.Totals.Healthy == 3 && r.Workers[0].ID == 3 && r.Workers[1].ID == 4
	})

	if out := mustCtl(t, env, "reload"); strings.TrimSpace(out) != "reloaded 2 local worker(s)" {
		t.Fatalf("ctl reload: %q", out)
	}
	before := report().Workers[0].PID
	out = mustCtl(t, env, "recycle", "3")
	m := regexp.MustCompile(`^worker 3 recycled: pid (\d+) replaced by pid (\d+)\n$`).FindStringSubmatch(out)
	if m == nil || m[1] == m[2] || m[1] != strconv.Itoa(before) {
		t.Fatalf("ctl recycle 3: %q (pid before: %d)", out, before)
	}
	if after := report().Workers[0].PID; after == before || strconv.Itoa(after) != m[2] {
		t.Fatalf("worker 3 pid %d after the recycle, was %d", after, before)
	}
	var rec map[string]int
	if err := json.Unmarshal([]byte(mustCtl(t, env, "recycle", "4", "--json")), &rec); err != nil ||
		rec["worker"] != 4 || rec["pid"] == rec["previous_pid"] {
		t.Fatalf("ctl recycle 4 --json: %v %v", rec, err)
	}
	for _, w := range report().Workers {
		if w.Kind == "local" && (w.RestartCause != "manual" || w.Restarts != 2) {
			t.Fatalf("worker %d: %d restarts, the last for %q; want 2 (reload, recycle), manual", w.ID, w.Restarts, w.RestartCause)
		}
	}

	out = mustCtl(t, env, "upstreams")
	if !regexp.MustCompile(`(?m)^1001 +` + regexp.QuoteMeta(remote) + ` `).MatchString(out) {
		t.Fatalf("ctl upstreams:\n%s", out)
	}
	var ul admin.UpstreamList
	if err := json.Unmarshal([]byte(mustCtl(t, env, "upstreams", "--json")), &ul); err != nil ||
		len(ul.Upstreams) != 1 || ul.Upstreams[0].Address != remote {
		t.Fatalf("ctl upstreams --json: %+v %v", ul, err)
	}

	out = mustCtl(t, env, "top", "--count", "2", "--interval", "100ms")
	if strings.Count(out, "LAST CHECK ERROR") != 2 || !strings.Contains(out, "req/s") {
		t.Fatalf("ctl top, two frames:\n%s", out)
	}
	out = mustCtl(t, env, "top", "--count", "2", "--interval", "100ms", "--json")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 2 || !json.Valid([]byte(lines[1])) {
		t.Fatalf("ctl top --json: %q", out)
	}

	// Refusals: the server's message, exit 1.
	for _, tc := range []struct {
		env  []string
		args []string
		want string
	}{
		{[]string{"ADMIN_ADDR=" + b.admin, "ADMIN_TOKEN=wrong"}, []string{"status"}, "401 Unauthorized: missing or wrong bearer token"},
		{[]string{"ADMIN_ADDR=" + b.admin}, []string{"reload", "--json"}, "401 Unauthorized: missing or wrong bearer token"},
		{env, []string{"recycle", "99"}, "404 Not Found: worker 99: no such local worker"},
		{env, []string{"scale", "1000"}, "422 Unprocessable Entity"},
		{[]string{"ADMIN_ADDR=" + freePort(t)}, []string{"status"}, "connection refused"},
	} {
		code, out, errOut := runCtl(t, tc.env, tc.args...)
		if code != 1 || out != "" || !strings.Contains(errOut, tc.want) || strings.Count(errOut, "\n") != 1 {
			t.Fatalf("ctl %q: exit %d, stdout %q, stderr %q; want 1 and one line with %q", tc.args, code, out, errOut, tc.want)
		}
	}
	// --token wins over the environment.
	mustCtl(t, []string{"ADMIN_ADDR=" + b.admin, "ADMIN_TOKEN=wrong"}, "--token", "tok", "status")
}
