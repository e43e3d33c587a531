package supervisor

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/valyala/fasthttp"

	"github.com/procbal/procbal/shared/protocol"
	"github.com/procbal/procbal/shared/workerkit"
)

// helperEnv marks a process started from this test binary as a worker
// (go-plugin's GO_WANT_HELPER_PROCESS): TestMain runs the mode its
// arguments name instead of the tests. The tests set it in their own
// environment, which the supervisor hands to every worker it spawns.
const helperEnv = "SUPERVISOR_TEST_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		os.Exit(helperMain(os.Args[1:]))
	}
	os.Setenv(helperEnv, "1")
	// A binary built with -race sleeps 1s at exit by default; workers
	// that take a second to exit after SIGTERM would slow every test.
	os.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	os.Exit(m.Run())
}

// helperMain runs one worker: args are the mode, or "@file" to read the
// mode from file at start (so a reload can change what new workers do),
// and a file to which each start appends "<pid> <unix nanoseconds>".
//
// The modes: "serve" answers HEALTH_PATH and "/" (with "<WORKER_ID>
// <pid>") on $WORKER_SOCKET and exits 0 on SIGTERM; "slow" does the same
// after a second; "exit" says "cannot boot" on stderr and exits 3 at once;
// "never-healthy" listens but answers 500; "hang" accepts connections and
// never answers; "ignore-sigterm" serves and ignores SIGTERM, so only
// SIGKILL ends it; "grow" serves and allocates memory, up to 400 MB of
// RSS, until it is recycled; "dbshare" is a worker-kit worker that serves
// POST /internal/db-share on its report socket and records the database
// shares it holds (see serveDBShare); "dbshare-busy" does the same but
// answers its first lowering 503.
func helperMain(args []string) int {
	mode := args[0]
	if file, ok := strings.CutPrefix(mode, "@"); ok {
		b, err := os.ReadFile(file)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		mode = strings.TrimSpace(string(b))
	}
	if len(args) > 1 {
		recordStart(args[1])
	}
	if mode == "exit" {
		fmt.Fprintln(os.Stderr, "cannot boot")
		return 3
	}
	if mode == "slow" {
		time.Sleep(time.Second)
		mode = "serve"
	}
	if mode == "dbshare" || mode == "dbshare-busy" {
		file := ""
		if len(args) > 1 {
			file = args[1] + ".db"
		}
		return serveDBShare(file, mode == "dbshare-busy")
	}
	ln, err := net.Listen("unix", os.Getenv(protocol.EnvSocket))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	switch mode {
	case "hang":
		return hang(ln)
	case "grow":
		go grow(400 << 20)
	case "serve", "never-healthy", "ignore-sigterm":
	default:
		fmt.Fprintln(os.Stderr, "unknown helper mode", mode)
		return 2
	}
	return serve(ln, mode)
}

func recordStart(file string) {
	f, err := os.OpenFile(file, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return
	}
	fmt.Fprintf(f, "%d %d\n", os.Getpid(), time.Now().UnixNano())
	f.Close()
}

// serve answers until SIGTERM, then finishes its requests and exits 0;
// in mode "ignore-sigterm" it never stops.
func serve(ln net.Listener, mode string) int {
	id := os.Getenv(protocol.EnvID)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if mode == "never-healthy" {
			http.Error(w, "not ready", http.StatusInternalServerError)
			return
		}
		if ms, err := strconv.Atoi(r.URL.Query().Get("sleep_ms")); err == nil {
			time.Sleep(time.Duration(ms) * time.Millisecond)
		}
		fmt.Fprintf(w, "%s %d\n", id, os.Getpid())
	})}
	if mode == "ignore-sigterm" {
		signal.Ignore(syscall.SIGTERM)
		srv.Serve(ln) // returns never: nothing closes ln
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	go srv.Serve(ln)
	<-ctx.Done()
	srv.Shutdown(context.Background())
	return 0
}

// hang accepts connections and holds them, unanswered, until killed.
func hang(ln net.Listener) int {
	var held []net.Conn
	for {
		c, err := ln.Accept()
		if err != nil {
			return 1
		}
		held = append(held, c)
	}
}

// hoard keeps what grow allocated.
var hoard [][]byte

// grow allocates and touches memory, 4 MiB every 10ms, until its RSS
// reaches limit.
func grow(limit uint64) {
	for {
		if rss, _ := protocol.ReadRSS(os.Getpid()); rss >= limit {
			return
		}
		b := make([]byte, 4<<20)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		hoard = append(hoard, b)
		time.Sleep(10 * time.Millisecond)
	}
}

// serveDBShare runs a worker on the worker kit, as the reference worker
// does, whose Internal handler takes POST protocol.DBSharePath as the
// contract says, with no database behind it: its share is what it holds.
// It appends to file "<event> <pid> <share> <unix nanoseconds>" lines:
// "start" with DB_POOL_MAX, "share" for each share it takes (before it
// answers, so a lowered share is recorded before the balancer learns of
// it, a raised one as soon as it arrives), "busy" for a 503, and "exit"
// once it has stopped serving. With busy it answers its first lowering 503
// after 200ms and keeps its share, as a worker whose busy connections
// outlast protocol.DBShareWait does.
func serveDBShare(file string, busy bool) int {
	pid := os.Getpid()
	share, err := strconv.Atoi(os.Getenv(protocol.EnvDBPoolMax))
	if err != nil {
		fmt.Fprintln(os.Stderr, "DB_POOL_MAX:", err)
		return 2
	}
	recordShare(file, "start", pid, share)
	id := os.Getenv(protocol.EnvID)
	var mu sync.Mutex
	refused := false
	answer := func(ctx *fasthttp.RequestCtx, code int, st protocol.DBShareStatus) {
		ctx.SetStatusCode(code)
		ctx.SetContentType("application/json")
		_ = json.NewEncoder(ctx).Encode(st)
	}
	err = workerkit.Serve(context.Background(), workerkit.Options{
		Handler:         func(ctx *fasthttp.RequestCtx) { fmt.Fprintf(ctx, "%s %d\n", id, pid) },
		Logger:          hclog.New(&hclog.LoggerOptions{Output: os.Stderr, JSONFormat: true, Level: hclog.Warn}),
		ShutdownTimeout: 5 * time.Second,
		Internal: func(ctx *fasthttp.RequestCtx) {
			var req protocol.DBShare
			switch {
			case string(ctx.Path()) != protocol.DBSharePath:
				answer(ctx, fasthttp.StatusNotFound, protocol.DBShareStatus{Error: "no such route"})
				return
			case json.Unmarshal(ctx.PostBody(), &req) != nil || req.Max < 1:
				answer(ctx, fasthttp.StatusBadRequest, protocol.DBShareStatus{Error: "bad body"})
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if busy && req.Max < share && !refused {
				refused = true
				time.Sleep(200 * time.Millisecond)
				recordShare(file, "busy", pid, req.Max)
				answer(ctx, fasthttp.StatusServiceUnavailable, protocol.DBShareStatus{Max: req.Max, Open: share, Error: "busy"})
				return
			}
			share = req.Max
			recordShare(file, "share", pid, share)
			answer(ctx, fasthttp.StatusOK, protocol.DBShareStatus{Max: share, Open: 0})
		},
	})
	recordShare(file, "exit", pid, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func recordShare(file, event string, pid, share int) {
	if file == "" {
		return
	}
	f, err := os.OpenFile(file, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return
	}
	fmt.Fprintf(f, "%s %d %d %d\n", event, pid, share, time.Now().UnixNano())
	f.Close()
}
