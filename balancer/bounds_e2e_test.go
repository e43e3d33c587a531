package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Issue 2: client requests are bounded: header size (431), body size (413),
// the time to send headers, idle keep-alive time, and the upstream's answer
// time (504); each answer is JSON, and the balancer keeps serving.
func TestClientBounds(t *testing.T) {
	t.Parallel()
	b := startBalancer(t, 1, "MAX_WORKERS=1", "MAX_HEADER_BYTES=4KiB", "MAX_BODY_BYTES=1KiB",
		"READ_HEADER_TIMEOUT=300ms", "IDLE_TIMEOUT=1200ms", "UPSTREAM_TIMEOUT=300ms")
	big := "GET /api/health HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 8<<10) + "\r\n\r\n"
	if st := rawRequest(t, b.addr, big); !strings.Contains(st, " 431 ") {
		t.Fatalf("8 KiB header: %q, want 431", st)
	}
	body := strings.Repeat("b", 2<<10)
	post := "POST /api/health HTTP/1.1\r\nHost: x\r\nContent-Length: 2048\r\n\r\n" + body
	if st := rawRequest(t, b.addr, post); !strings.Contains(st, " 413 ") {
		t.Fatalf("2 KiB body: %q, want 413", st)
	}
	for _, tc := range []struct {
		name, sent string
		min        time.Duration
	}{
		{"slow headers", "GET /api/health HTTP/1.1\r\nHost: x\r\n", 300 * time.Millisecond},         // never finished
		{"idle keep-alive", "GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n", 1200 * time.Millisecond}, // then nothing
	} {
		start := time.Now()
		if !closedWithin(t, b.addr, tc.sent, 5*time.Second) {
			t.Fatalf("%s: connection still open after 5s", tc.name)
		}
		took := time.Since(start)
		t.Logf("%s: closed after %s", tc.name, took.Round(time.Millisecond))
		if took < tc.min {
			t.Fatalf("%s: closed after %s, before its timeout %s", tc.name, took, tc.min)
		}
	}
	code, respBody, err := b.get("/api/sleep?ms=1000")
	if err != nil || code != 504 || !strings.Contains(string(respBody), `"error"`) {
		t.Fatalf("slow upstream: %d %s %v, want 504 JSON", code, respBody, err)
	}
	if h, err := b.health(); err != nil || h.WorkerID != 1 {
		t.Fatalf("after the refused requests: %+v %v", h, err)
	}
}

// closedWithin writes partial and reports whether the server closes the
// connection within d.
func closedWithin(t *testing.T, addr, partial string, d time.Duration) bool {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if partial != "" {
		c.Write([]byte(partial))
	}
	c.SetReadDeadline(time.Now().Add(d))
	_, err = io.Copy(io.Discard, bufio.NewReader(c))
	return err == nil // EOF: closed by the server; a timeout is an error
}

// Out of file descriptors, the balancer neither spins nor dies nor blames
// its workers: it pauses accepting, answers what it can (503 when it cannot
// open an upstream socket), and serves normally once descriptors are free.
func TestOutOfDescriptorsRecovers(t *testing.T) {
	t.Parallel()
	b := startBalancer(t, 2)
	pid := b.cmd.Process.Pid
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	limit := len(fds) + 16 // room for the pooled connections the balancer opens later
	if out, err := exec.Command("prlimit", "--pid", strconv.Itoa(pid), fmt.Sprintf("--nofile=%d:%d", limit, limit)).CombinedOutput(); err != nil {
		t.Fatalf("prlimit: %v %s", err, out)
	}
	var held []net.Conn
	for range 80 {
		c, err := net.DialTimeout("tcp", b.addr, time.Second)
		if err != nil {
			break // the backlog is full too
		}
		held = append(held, c)
		c.Write([]byte("GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n"))
	}
	time.Sleep(1500 * time.Millisecond)
	for _, c := range held {
		c.Close()
	}
	// The limit stays low (lowering a hard limit is final without
	// privileges): closing the held connections is what frees descriptors.
	recovering := time.Now()
	waitFor(t, 5*time.Second, "normal answers again", func() bool {
		code, _, err := b.get("/api/health")
		return err == nil && code == 200
	})
	t.Logf("normal answers %s after the descriptors were freed", time.Since(recovering).Round(time.Millisecond))
	if !strings.Contains(b.out.String(), "pausing accepts") {
		t.Errorf("no accept pause logged: the test did not run out of descriptors")
	}
	// The shortage was the balancer's: no proxy failure is counted against
	// a worker, so none is ejected. (Health probes are not asserted on: a
	// probe that cannot get a socket does fail.)
	for _, w := range b.workers().Workers {
		if w.Failures != 0 || w.Ejections != 0 {
			t.Errorf("worker %d: %d failures, %d ejections after the balancer ran out of descriptors, want 0",
				w.ID, w.Failures, w.Ejections)
		}
	}
}
