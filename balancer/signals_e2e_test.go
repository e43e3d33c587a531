package main

import (
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Issue 14: kill -TTIN twice, then -TTOU once: one worker more, and no
// request fails under load meanwhile (as gunicorn's TTIN and TTOU).
func TestSignalsTTINAndTTOU(t *testing.T) {
	t.Parallel()
	b := startBalancer(t, 2)
	l := startLoad(b, 8, "/api/health")
	time.Sleep(200 * time.Millisecond)
	for _, sig := range []syscall.Signal{syscall.SIGTTIN, syscall.SIGTTIN, syscall.SIGTTOU} {
		if err := b.cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	r := b.waitHealthy(3, 15*time.Second)
	time.Sleep(500 * time.Millisecond) // the signals are all applied: the count stays
	if r = b.waitHealthy(3, 5*time.Second); r.Totals.Workers != 3 {
		t.Fatalf("%d workers after TTIN, TTIN, TTOU; want 3", r.Totals.Workers)
	}
	l.finish(t)
	out := b.out.String()
	if n := strings.Count(out, "signal received, scaling by one"); n != 3 {
		t.Fatalf("%d scaling signal lines, want 3:\n%s", n, out)
	}
	if !strings.Contains(out, "signal=SIGTTIN") || !strings.Contains(out, "signal=SIGTTOU") {
		t.Fatalf("the signal lines do not name TTIN and TTOU:\n%s", grepLines(out, "signal"))
	}
	// Every ignored signal is logged, once; the balancer runs on.
	for range 3 {
		b.cmd.Process.Signal(syscall.SIGUSR2)
		b.cmd.Process.Signal(syscall.SIGWINCH)
	}
	waitFor(t, 5*time.Second, "the ignored signals logged", func() bool {
		out := b.out.String()
		return strings.Contains(out, "signal ignored (logged once): signal=SIGUSR2") &&
			strings.Contains(out, "signal ignored (logged once): signal=SIGWINCH")
	})
	time.Sleep(200 * time.Millisecond)
	if n := strings.Count(b.out.String(), "signal ignored (logged once): signal=SIGUSR2"); n != 1 {
		t.Fatalf("SIGUSR2 logged %d times at info, want once", n)
	}
	if _, err := b.health(); err != nil {
		t.Fatalf("after the ignored signals: %v", err)
	}
}

// Issue 14: the startup line gives the balancer's pid (which kill -HUP
// needs) and the admin address; JSON logs give durations in milliseconds.
func TestSignalsStartupLineAndJSONDurations(t *testing.T) {
	t.Parallel()
	b := startBalancer(t, 2, "LOG_FORMAT=json")
	pid := strconv.Itoa(b.cmd.Process.Pid)
	var starting, ready map[string]any
	for _, line := range strings.Split(b.out.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil {
			continue
		}
		switch m["@message"] {
		case "balancer starting":
			starting = m
		case "worker ready":
			ready = m
		}
	}
	if starting == nil || strconv.FormatFloat(starting["pid"].(float64), 'f', 0, 64) != pid || starting["admin"] != b.admin {
		t.Fatalf("startup line %v, want pid %s and admin %s", starting, pid, b.admin)
	}
	if ready == nil || ready["after_ms"] == nil || ready["after"] != nil {
		t.Fatalf("worker ready line %v, want after_ms", ready)
	}
	if ms, _ := ready["after_ms"].(float64); ms <= 0 || ms > 15000 {
		t.Fatalf("after_ms = %v, want milliseconds", ready["after_ms"])
	}
	text := startBalancer(t, 1, "MAX_WORKERS=1")
	re := regexp.MustCompile(`balancer starting: pid=` + strconv.Itoa(text.cmd.Process.Pid) + ` address=\S+ admin=` + regexp.QuoteMeta(text.admin))
	if !re.MatchString(text.out.String()) {
		t.Fatalf("text startup line: want %s in\n%s", re, text.out.String())
	}
}
