package main

// The "realtime" helper worker: the test binary re-executed as a worker
// (E2E_HELPER=realtime, as helper_test.go's "record" mode) that serves what
// the tunnel, SSE and sticky tests need, each answer naming the process
// that gave it:
//
//	/id      {"worker_id":N,"pid":P}
//	/ws      a WebSocket echo (gorilla/websocket); the 101 carries
//	         X-Worker-Id and X-Worker-Pid. On SIGTERM every WebSocket is
//	         closed with 1001 "going away".
//	/sse     text/event-stream: ?n= events (12), one every ?every= (1s),
//	         each `data: {"seq":i,"sent_ns":<time.Now().UnixNano()>,...}`
//	         stamped just before it is written and flushed
//	/raw101  a 101 Switching Protocols nobody asked for, then silence
//	else     "ok <id>"
//
// HEALTH_PATH answers 503 for READY_DELAY after the start (a replacement
// that is slow to get ready), then 200. With RECORD_FILE every request but
// the health probes is appended to that file before it is answered, so a
// test can tell what reached a worker.
//
// It is dispatched from init, before TestMain, so helper_test.go's
// helperMain stays as it is.

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

const realtimeMode = "realtime"

func init() {
	if os.Getenv("E2E_HELPER") == realtimeMode {
		os.Exit(realtimeMain())
	}
}

// realtimeWorker is the helper's state.
type realtimeWorker struct {
	id, pid  string
	health   string
	ready    time.Time // HEALTH_PATH answers 200 from then on
	recMu    sync.Mutex
	rec      *os.File // nil without RECORD_FILE
	upgrader websocket.Upgrader

	mu      sync.Mutex
	sockets map[*websocket.Conn]struct{}
	closing bool
}

func realtimeMain() int {
	w := &realtimeWorker{id: os.Getenv("WORKER_ID"), pid: strconv.Itoa(os.Getpid()),
		health: os.Getenv("HEALTH_PATH"), sockets: map[*websocket.Conn]struct{}{},
		upgrader: websocket.Upgrader{ReadBufferSize: 1024, WriteBufferSize: 1024,
			CheckOrigin: func(*http.Request) bool { return true }}}
	if w.health == "" {
		w.health = "/healthz"
	}
	delay, _ := time.ParseDuration(os.Getenv("READY_DELAY"))
	w.ready = time.Now().Add(delay)
	if path := os.Getenv("RECORD_FILE"); path != "" {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		w.rec = f
	}
	sock := os.Getenv("WORKER_SOCKET")
	os.Remove(sock)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	srv := &http.Server{Handler: w}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	go srv.Serve(ln)
	<-ctx.Done()
	w.closeSockets()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(sctx)
	return 0
}

func (w *realtimeWorker) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	if r.URL.Path == w.health {
		if time.Now().Before(w.ready) {
			http.Error(rw, "not ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(rw, "ok")
		return
	}
	w.record(r)
	switch r.URL.Path {
	case "/id":
		rw.Header().Set("Content-Type", "application/json")
		json.NewEncoder(rw).Encode(map[string]any{"worker_id": atoiOr(w.id, 0), "pid": atoiOr(w.pid, 0)})
	case "/ws":
		w.echo(rw, r)
	case "/sse":
		w.sse(rw, r)
	case "/raw101":
		w.raw101(rw)
	default:
		fmt.Fprintf(rw, "ok %s\n", w.id)
	}
}

func (w *realtimeWorker) record(r *http.Request) {
	if w.rec == nil {
		return
	}
	w.recMu.Lock()
	defer w.recMu.Unlock()
	fmt.Fprintf(w.rec, "%s %s %s upgrade=%q cl=%d\n", r.Method, r.URL.RequestURI(), r.Proto, r.Header.Get("Upgrade"), r.ContentLength)
}

// echo upgrades to a WebSocket and sends every message back as it came.
func (w *realtimeWorker) echo(rw http.ResponseWriter, r *http.Request) {
	h := http.Header{"X-Worker-Id": {w.id}, "X-Worker-Pid": {w.pid}}
	c, err := w.upgrader.Upgrade(rw, r, h)
	if err != nil {
		return // the upgrader answered
	}
	w.mu.Lock()
	if w.closing {
		w.mu.Unlock()
		c.Close()
		return
	}
	w.sockets[c] = struct{}{}
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		delete(w.sockets, c)
		w.mu.Unlock()
		c.Close()
	}()
	for {
		mt, msg, err := c.ReadMessage()
		if err != nil {
			return
		}
		if err := c.WriteMessage(mt, msg); err != nil {
			return
		}
	}
}

// closeSockets closes every WebSocket with 1001 "going away", as a worker
// should on SIGTERM.
func (w *realtimeWorker) closeSockets() {
	w.mu.Lock()
	w.closing = true
	open := make([]*websocket.Conn, 0, len(w.sockets))
	for c := range w.sockets {
		open = append(open, c)
	}
	w.mu.Unlock()
	msg := websocket.FormatCloseMessage(websocket.CloseGoingAway, "going away")
	for _, c := range open {
		c.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
		c.Close()
	}
}

// sse writes n events, one every `every`, flushing each.
func (w *realtimeWorker) sse(rw http.ResponseWriter, r *http.Request) {
	n := atoiOr(r.URL.Query().Get("n"), 12)
	every, err := time.ParseDuration(r.URL.Query().Get("every"))
	if err != nil {
		every = time.Second
	}
	f := rw.(http.Flusher)
	rw.Header().Set("Content-Type", "text/event-stream")
	rw.Header().Set("Cache-Control", "no-cache")
	rw.WriteHeader(http.StatusOK)
	f.Flush()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for i := 1; i <= n; i++ {
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
		}
		fmt.Fprintf(rw, "id: %d\ndata: {\"seq\":%d,\"sent_ns\":%d,\"worker_id\":%s}\n\n", i, i, time.Now().UnixNano(), w.id)
		f.Flush()
	}
}

// raw101 answers 101 Switching Protocols to a request that did not ask
// for it, then holds the connection open a while, reading and dropping.
func (w *realtimeWorker) raw101(rw http.ResponseWriter) {
	c, buf, err := rw.(http.Hijacker).Hijack()
	if err != nil {
		return
	}
	defer c.Close()
	buf.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n")
	buf.Flush()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 512)
	for {
		if _, err := c.Read(b); err != nil {
			return
		}
	}
}

func atoiOr(s string, def int) int {
	if n, err := strconv.Atoi(s); err == nil {
		return n
	}
	return def
}
