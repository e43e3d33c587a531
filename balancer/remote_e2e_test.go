package main

import (
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startRemoteWorker runs the reference worker on its own, on a loopback TCP
// port, as a remote upstream would run on another host.
func startRemoteWorker(t *testing.T, id string) (string, *exec.Cmd) {
	t.Helper()
	addr := freePort(t)
	cmd := exec.Command(bins.worker)
	cmd.Env = append(os.Environ(), "WORKER_ADDR="+addr, "WORKER_ID="+id)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return addr, cmd
}

// Contract: remote upstreams (UPSTREAMS) are proxied to, health-checked,
// reported with kind remote, and taken out when they stop answering; with
// UPSTREAMS set, /admin/scale accepts 0 local workers.
func TestRemoteUpstreams(t *testing.T) {
	t.Parallel()
	a, _ := startRemoteWorker(t, "71")
	bAddr, bCmd := startRemoteWorker(t, "72")
	port := bAddr[strings.LastIndexByte(bAddr, ':')+1:]
	// The second is named through DNS: localhost resolves to loopback.
	bal := launch(t, "MAX_WORKERS=0", "UPSTREAMS="+a+",localhost:"+port, "DNS_REFRESH=200ms")
	waitFor(t, 10*time.Second, "both remote upstreams healthy", func() bool {
		return bal.tokenGet("/admin/health", "") == 200 && bal.workers().Totals.Healthy >= 2
	})
	seen := map[int]bool{}
	for range 10 {
		h, err := bal.health()
		if err != nil {
			t.Fatal(err)
		}
		seen[h.WorkerID] = true
	}
	if !seen[71] || !seen[72] {
		t.Fatalf("requests reached workers %v, want 71 and 72", seen)
	}
	for _, w := range bal.workers().Workers {
		if w.Kind != "remote" || w.PID != 0 || w.ID <= 1000 {
			t.Fatalf("remote entry %+v", w)
		}
	}
	if code := bal.adminReq("POST", "/admin/scale", `{"workers":0}`, nil); code != 200 {
		t.Fatalf("scale to 0 with UPSTREAMS: %d", code)
	}
	bCmd.Process.Kill()
	waitFor(t, 10*time.Second, "the dead remote out of rotation", func() bool {
		for _, w := range bal.workers().Workers {
			if strings.HasSuffix(w.Address, ":"+port) && w.State == "healthy" {
				return false
			}
		}
		return true
	})
	for range 4 {
		if h, err := bal.health(); err != nil || h.WorkerID != 71 {
			t.Fatalf("after the remote died: %+v %v", h, err)
		}
	}
}
