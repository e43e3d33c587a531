package main

import (
	"context"
	"math/rand/v2"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// countingListener counts the connections it accepted.
type countingListener struct {
	net.Listener
	accepted atomic.Int64
}

// Accept counts and returns the next connection.
func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.accepted.Add(1)
	}
	return c, err
}

// serveLocal serves h on a fresh 127.0.0.1 port until the test ends and
// returns its base URL and listener.
func serveLocal(t *testing.T, h fasthttp.RequestHandler) (string, *countingListener) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{Listener: ln}
	srv := &fasthttp.Server{Handler: h}
	go func() { _ = srv.Serve(cl) }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return "http://" + ln.Addr().String(), cl
}

// postChecker is a server that answers 400 to any request but a POST of
// that many bytes of 'x' with the bench's Content-Type.
type postChecker int

// serve checks one request.
func (want postChecker) serve(ctx *fasthttp.RequestCtx) {
	body := ctx.PostBody()
	if !ctx.IsPost() || string(ctx.Request.Header.ContentType()) != postContentType ||
		len(body) != int(want) || strings.Trim(string(body), "x") != "" {
		ctx.SetStatusCode(fasthttp.StatusBadRequest)
	}
}

// TestPercentile checks nearest-rank percentiles on fixed samples.
func TestPercentile(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = i + 1
	}
	tests := []struct {
		samples []time.Duration
		p       int
		want    time.Duration
	}{
		{ms(hundred...), 50, 50 * time.Millisecond},
		{ms(hundred...), 75, 75 * time.Millisecond},
		{ms(hundred...), 90, 90 * time.Millisecond},
		{ms(hundred...), 99, 99 * time.Millisecond},
		{ms(hundred...), 100, 100 * time.Millisecond},
		{ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 50, 5 * time.Millisecond},
		{ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 99, 10 * time.Millisecond},
		{ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 1, time.Millisecond},
		{ms(3, 7, 7, 20), 50, 7 * time.Millisecond},
		{ms(3, 7, 7, 20), 75, 7 * time.Millisecond},
		{ms(3, 7, 7, 20), 76, 20 * time.Millisecond},
		{ms(42), 99, 42 * time.Millisecond},
		{nil, 99, 0},
	}
	for _, tc := range tests {
		if got := percentile(tc.samples, tc.p); got != tc.want {
			t.Errorf("percentile(%d samples, %d) = %s, want %s", len(tc.samples), tc.p, got, tc.want)
		}
	}
}

// TestMergeStats checks counts are summed and percentiles taken over the
// merged, unsorted samples of several connections.
func TestMergeStats(t *testing.T) {
	var all []time.Duration
	for i := 1; i <= 1000; i++ {
		all = append(all, time.Duration(i)*time.Microsecond)
	}
	rand.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	stats := []connStats{
		{latencies: all[:300], requests: 300, sockErrs: 2, badStatus: 5},
		{latencies: all[300:], requests: 700, badStatus: 1},
		{sockErrs: 3},
	}
	r := mergeStats(stats, 2*time.Second)
	if r.Requests != 1000 || r.SockErrs != 5 || r.BadStatus != 6 || r.Errors() != 11 || r.RPS != 500 {
		t.Errorf("merged = %+v", r)
	}
	want := map[int]time.Duration{50: 500 * time.Microsecond, 75: 750 * time.Microsecond,
		90: 900 * time.Microsecond, 99: 990 * time.Microsecond}
	for p, d := range want {
		if r.Latency[p] != d {
			t.Errorf("p%d = %s, want %s", p, r.Latency[p], d)
		}
	}
}

// TestGoLoadCounts loads a server answering 500 to every 10th request and
// checks requests, errors and connections against what the server saw.
func TestGoLoadCounts(t *testing.T) {
	var served atomic.Int64
	url, ln := serveLocal(t, func(ctx *fasthttp.RequestCtx) {
		if served.Add(1)%10 == 0 {
			ctx.SetStatusCode(fasthttp.StatusInternalServerError)
		}
		ctx.SetBodyString("ok")
	})
	opts := wrkOptions{Engine: loadGo, Connections: 4, Duration: 300 * time.Millisecond}
	r, err := runLoad(context.Background(), opts, url+"/x")
	if err != nil {
		t.Fatal(err)
	}
	n := served.Load()
	if r.Requests < 100 || r.Requests != n {
		t.Fatalf("requests = %d, server served %d; want equal and at least 100", r.Requests, n)
	}
	if r.BadStatus != n/10 || r.SockErrs != 0 {
		t.Errorf("bad status %d, socket errors %d; want %d and 0", r.BadStatus, r.SockErrs, n/10)
	}
	if got := ln.accepted.Load(); got != 4 {
		t.Errorf("server accepted %d connections, want 4 (one keep-alive connection per goroutine)", got)
	}
	if r.Elapsed < opts.Duration || r.Elapsed > 2*time.Second || r.RPS != float64(n)/r.Elapsed.Seconds() {
		t.Errorf("elapsed %s, rps %.0f for %d requests", r.Elapsed, r.RPS, n)
	}
}

// TestGoLoadPost checks a POST path sends its body with every request.
func TestGoLoadPost(t *testing.T) {
	url, _ := serveLocal(t, postChecker(16384).serve)
	opts := wrkOptions{Engine: loadGo, Connections: 2, Duration: 200 * time.Millisecond, Body: 16384}
	r, err := runLoad(context.Background(), opts, url+"/api/health")
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests < 10 || r.Errors() != 0 {
		t.Errorf("POST: %d requests, %d errors; want at least 10 and none", r.Requests, r.Errors())
	}
	opts.Body = 0
	if r, _ := runLoad(context.Background(), opts, url+"/api/health"); r.Requests == 0 || r.BadStatus != r.Requests {
		t.Errorf("GET to the POST checker: %d requests, %d bad; want all bad", r.Requests, r.BadStatus)
	}
}

// TestGoLoadLatency checks latencies are those of the server's answers.
func TestGoLoadLatency(t *testing.T) {
	url, _ := serveLocal(t, func(ctx *fasthttp.RequestCtx) { time.Sleep(20 * time.Millisecond) })
	r, err := runGoLoad(context.Background(), wrkOptions{Connections: 2, Duration: 250 * time.Millisecond}, url+"/")
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests < 4 || r.Requests > 30 {
		t.Errorf("requests = %d, want about 2 × 250ms / 20ms", r.Requests)
	}
	p50, p99 := r.Latency[50], r.Latency[99]
	if p50 < 20*time.Millisecond || p50 > 200*time.Millisecond || p99 < p50 {
		t.Errorf("p50 %s, p99 %s; want 20ms ≤ p50 ≤ p99", p50, p99)
	}
}

// TestGoLoadSocketErrors checks a refused connection counts as a socket
// error, not a request.
func TestGoLoadSocketErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	r, err := runGoLoad(context.Background(), wrkOptions{Connections: 2, Duration: 100 * time.Millisecond}, "http://"+addr+"/")
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests != 0 || r.SockErrs == 0 || r.Errors() != r.SockErrs || r.Latency[99] != 0 {
		t.Errorf("against a closed port: %+v, want only socket errors", r)
	}
}

// TestGoLoadStops checks a cancelled context ends the run early, with an
// error, and a bad URL is refused.
func TestGoLoadStops(t *testing.T) {
	url, _ := serveLocal(t, func(ctx *fasthttp.RequestCtx) {})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := runGoLoad(ctx, wrkOptions{Connections: 2, Duration: time.Minute}, url+"/"); err == nil {
		t.Error("cancelled run returned no error")
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("cancelled run took %s", took)
	}
	if _, err := runGoLoad(context.Background(), wrkOptions{Connections: 1, Duration: time.Second}, "unix:/x"); err == nil {
		t.Error("non-http URL accepted")
	}
}
