package main

import (
	"bufio"
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary be the WebSocket echo worker, as the bench
// binary is (main), so startWSSystems can be tested as it runs.
func TestMain(m *testing.M) {
	if os.Getenv(benchRoleEnv) == wsEchoRole {
		os.Exit(wsEchoWorker())
	}
	os.Exit(m.Run())
}

// TestWSFrames round-trips frames of every length encoding, masked and
// not, and refuses one over the bound.
func TestWSFrames(t *testing.T) {
	key := [4]byte{1, 2, 3, 4}
	for _, n := range []int{0, 1, 125, 126, 127, 65535, 65536, 70000} {
		for _, mask := range []bool{false, true} {
			payload := bytes.Repeat([]byte("ab"), n/2+1)[:n]
			frame := wsAppendFrame(nil, wsText, n != 127, payload, mask, key)
			if mask && n > 0 && bytes.Contains(frame, payload) {
				t.Errorf("masked frame of %d bytes carries the payload in clear", n)
			}
			op, fin, got, err := wsReadFrame(bufio.NewReader(bytes.NewReader(frame)), make([]byte, 0, 16))
			if err != nil || op != wsText || fin != (n != 127) || !bytes.Equal(got, payload) {
				t.Errorf("n=%d mask=%v: op %d fin %v len %d err %v", n, mask, op, fin, len(got), err)
			}
		}
	}
	big := wsAppendFrame(nil, wsText, true, make([]byte, wsMaxFrame+1), false, key)
	if _, _, _, err := wsReadFrame(bufio.NewReader(bytes.NewReader(big)), nil); err != errWSFrameTooBig {
		t.Errorf("a frame over wsMaxFrame: err %v", err)
	}
}

// TestWSEchoHandler checks the echo worker's health answers, its refusal of
// a plain GET, and the echo of text, ping and close, then loads it.
func TestWSEchoHandler(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(wsEchoHandler))
	defer srv.Close()
	for path, want := range map[string]int{"/healthz": 200, "/api/health": 200, "/ws": 400} {
		resp, err := http.Get(srv.URL + path)
		if err != nil || resp.StatusCode != want {
			t.Fatalf("GET %s: %v %v, want %d", path, resp, err, want)
		}
		resp.Body.Close()
	}
	addr := strings.TrimPrefix(srv.URL, "http://")
	c, br, err := wsDial(context.Background(), addr, "/ws")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	key := [4]byte{9, 8, 7, 6}
	for _, f := range []struct {
		op, want byte
		payload  string
	}{{wsText, wsText, "hello"}, {wsPing, wsPong, "p"}, {wsClose, wsClose, "\x03\xe8"}} {
		if _, err := c.Write(wsAppendFrame(nil, f.op, true, []byte(f.payload), true, key)); err != nil {
			t.Fatal(err)
		}
		op, _, got, err := wsReadFrame(br, nil)
		if err != nil || op != f.want || string(got) != f.payload {
			t.Fatalf("sent op %d %q: got op %d %q, %v", f.op, f.payload, op, got, err)
		}
	}
	r, err := runWSLoad(context.Background(), wrkOptions{Connections: 4, Duration: 300 * time.Millisecond, WS: true}, srv.URL+"/ws")
	if err != nil || r.Requests == 0 || r.Errors() != 0 || r.Latency[99] <= 0 || r.RPS <= 0 {
		t.Fatalf("runWSLoad = %+v, %v", r, err)
	}
	if _, err := runWSLoad(context.Background(), wrkOptions{Connections: 1, Duration: time.Second, WS: true}, srv.URL+"/api/health"); err == nil {
		t.Error("runWSLoad on a path that does not upgrade succeeded")
	}
}

// TestWSSystems starts nginx, HAProxy and direct as a ws: path has them,
// each in front of echo workers (this binary, see TestMain), from the
// generated configurations, and echoes through each: the upgrade passes.
func TestWSSystems(t *testing.T) {
	nginx, err := lookTool("nginx")
	if err != nil {
		t.Fatalf("nginx is not installed (make test installs nginx-light): %v", err)
	}
	haproxy, err := lookTool("haproxy")
	if err != nil {
		t.Fatalf("haproxy is not installed (make test installs it): %v", err)
	}
	dir := t.TempDir()
	paths, _ := parsePaths([]string{"/api/health", "ws:/ws"})
	su := setup{cfg: config{workers: 2, systems: []string{sysBalancerStream, sysNginx, sysHAProxy, sysDirect}, paths: paths,
		nginxWorkers: "1", haproxyThreads: 1},
		tools: tools{nginx: nginx, haproxy: haproxy}, dir: dir, logDir: filepath.Join(dir, "logs")}
	if err := os.Mkdir(su.logDir, 0o700); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	systems, err := startWSSystems(ctx, su)
	defer stopAll(systems)
	if err != nil {
		t.Fatal(err)
	}
	if len(systems) != 3 {
		t.Fatalf("%d systems started, want nginx, haproxy and direct (not balancer-stream)", len(systems))
	}
	for _, s := range systems {
		r, err := runWSLoad(ctx, wrkOptions{Connections: 4, Duration: 300 * time.Millisecond, WS: true}, s.baseURL+"/ws")
		if err != nil || r.Requests == 0 || r.Errors() != 0 {
			t.Errorf("%s: %+v, %v", s.name, r, err)
		} else {
			t.Logf("%s: %.0f msg/s over 4 tunnels, p99 %s", s.name, r.RPS, fmtLatency(r.Latency[99]))
		}
	}
}
