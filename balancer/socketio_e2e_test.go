package main

// Issue 13: socket.io, the reason Node backends need sticky sessions, behind
// the real balancer. testdata/socketio holds a socket.io server
// (server.js, the worker) and a load of socket.io clients (client.js), with
// the npm packages pinned by its committed package-lock.json; the set-up
// installs them with `npm ci` when node_modules is missing or older than
// the lock. Never skipped: a missing node or npm fails the tests.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// socketioDir is the Node project of these tests, relative to the package.
const socketioDir = "testdata/socketio"

// socketioInstall runs `npm ci` in socketioDir once per test binary, when
// node_modules is missing or older than package-lock.json (npm writes
// node_modules/.package-lock.json at the end of every install).
var socketioInstall = sync.OnceValue(func() error {
	lock, err := os.Stat(filepath.Join(socketioDir, "package-lock.json"))
	if err != nil {
		return err
	}
	if inst, err := os.Stat(filepath.Join(socketioDir, "node_modules", ".package-lock.json")); err == nil && !inst.ModTime().Before(lock.ModTime()) {
		return nil
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		return fmt.Errorf("npm is needed to install socket.io for these tests and was not found (apt-get install npm): %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund")
	cmd.Dir = socketioDir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("npm ci in %s: %v\n%s", socketioDir, err, out)
	}
	return nil
})

// socketioSetup returns node and the absolute path of the Node project,
// its packages installed.
func socketioSetup(t *testing.T) (node, dir string) {
	t.Helper()
	node = nodeInterp(t) // fails the test when node is missing or too old
	if err := socketioInstall(); err != nil {
		t.Fatal(err)
	}
	dir, err := filepath.Abs(socketioDir)
	if err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(dir, " \t") {
		t.Fatalf("WORKER_ARGS is split at spaces, so %q cannot be passed to the worker: move the checkout", dir)
	}
	return node, dir
}

// socketioSummary is what client.js prints.
type socketioSummary struct {
	Clients        int            `json:"clients"`
	Messages       int            `json:"messages"`
	Connected      int            `json:"connected"`
	Acked          int            `json:"acked"`
	Upgraded       int            `json:"upgraded"`
	OneWorker      int            `json:"oneWorker"`
	Workers        map[string]int `json:"workers"`
	SessionUnknown int            `json:"sessionUnknown"`
	Errors         map[string]int `json:"errors"`
	Samples        []string       `json:"samples"`
}

// runSocketIO starts the balancer with 4 socket.io workers and the given
// STICKY, runs 50 clients of 100 messages each through it, and returns
// what they saw.
func runSocketIO(t *testing.T, sticky string) socketioSummary {
	t.Helper()
	node, dir := socketioSetup(t)
	b := startBalancer(t, 4, "WORKER_CMD="+node, "WORKER_ARGS="+filepath.Join(dir, "server.js"),
		"MAX_WORKERS=4", "STICKY="+sticky, "LOG_LEVEL=info")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join(dir, "client.js"), "http://"+b.addr, "50", "100")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("client.js: %v\n%s%s", err, out, stderr.String())
	}
	var s socketioSummary
	if err := json.Unmarshal(out, &s); err != nil {
		t.Fatalf("client.js printed %q: %v\n%s", out, err, stderr.String())
	}
	t.Logf("STICKY=%s, %s: %s", sticky, time.Since(start).Round(time.Millisecond), bytes.TrimSpace(out))
	return s
}

// With STICKY=cookie, 50 socket.io clients on the default transports
// (long-polling, then the upgrade to WebSocket) exchange 100 acknowledged
// messages each: every message acknowledged, every client upgraded to
// WebSocket, each client on one worker process, and the clients spread
// over the workers.
func TestSocketIOStickyCookie(t *testing.T) {
	t.Parallel()
	s := runSocketIO(t, "cookie")
	if s.Acked != 50*100 || s.Upgraded != 50 || s.Connected != 50 || s.OneWorker != 50 ||
		s.SessionUnknown != 0 || len(s.Errors) != 0 {
		t.Fatalf("with STICKY=cookie: %d of 5000 messages acknowledged, %d of 50 clients upgraded to websocket "+
			"(%d connected, %d on one worker), %d \"Session ID unknown\", errors %v: %v",
			s.Acked, s.Upgraded, s.Connected, s.OneWorker, s.SessionUnknown, s.Errors, s.Samples)
	}
	if len(s.Workers) < 2 {
		t.Fatalf("every acknowledgement came from workers %v: the clients were not spread", s.Workers)
	}
}

// The same run without stickiness fails as socket.io says it must behind a
// balancer that spreads requests: the long-polling requests of one session
// reach workers that do not know it ("Session ID unknown", 400). So the
// test above can fail, and stickiness is what makes it pass.
func TestSocketIOWithoutStickyFails(t *testing.T) {
	t.Parallel()
	s := runSocketIO(t, "off")
	if s.SessionUnknown == 0 || s.Acked == 50*100 {
		t.Fatalf("without stickiness: %d \"Session ID unknown\" errors and %d of 5000 messages acknowledged; "+
			"want socket.io's failures (errors %v)", s.SessionUnknown, s.Acked, s.Errors)
	}
}
