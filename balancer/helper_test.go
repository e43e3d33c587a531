package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
)

// helperMain runs the test binary as a worker program that does not use the
// worker kit (go-plugin's helper-process pattern). Mode "record" appends
// each request it receives to $RECORD_FILE, so tests can assert what a
// worker saw; with GROW_KB it also keeps that much memory per request, to
// grow past memory limits.
func helperMain(mode string) int {
	if mode != "record" {
		fmt.Fprintln(os.Stderr, "unknown helper mode", mode)
		return 2
	}
	sock := os.Getenv("WORKER_SOCKET")
	os.Remove(sock)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	f, err := os.OpenFile(os.Getenv("RECORD_FILE"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Fprintf(f, "env GOMEMLIMIT=%s GOMAXPROCS=%s WORKER_ID=%s\n", os.Getenv("GOMEMLIMIT"), os.Getenv("GOMAXPROCS"), os.Getenv("WORKER_ID"))
	fmt.Println("plain line on stdout")
	fmt.Fprintln(os.Stderr, `{"@level":"warn","@message":"json line on stderr","k":"v"}`)
	var mu sync.Mutex
	var hoard [][]byte
	growKB, _ := strconv.Atoi(os.Getenv("GROW_KB"))
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			mu.Lock()
			fmt.Fprintf(f, "%s %s cl=%d te=%v\n", r.Method, r.URL.Path, r.ContentLength, r.TransferEncoding)
			if growKB > 0 {
				b := make([]byte, growKB<<10)
				for i := range b {
					b[i] = byte(i)
				}
				hoard = append(hoard, b)
			}
			mu.Unlock()
		}
		fmt.Fprintf(w, "ok %s\n", os.Getenv("WORKER_ID"))
	})}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	go srv.Serve(ln)
	<-ctx.Done()
	srv.Shutdown(context.Background())
	return 0
}
