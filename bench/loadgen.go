package main

// The built-in load generator (-load go): what `wrk --latency` measures, for
// machines without wrk. Each of -connections goroutines owns one keep-alive
// connection of a fasthttp.HostClient and sends GET requests (or POST
// requests with a body, for a post: path) in a closed loop until the
// duration ends. Latencies go into a slice the goroutine owns
// (preallocated, grown by append: no allocation per request, no lock on the
// hot path); the slices are merged and sorted once at the end, so the
// percentiles are exact. The bench process's GOMAXPROCS (-threads) plays the
// part of wrk's threads.

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// Load generators -load accepts.
const (
	loadWrk = "wrk"
	loadGo  = "go"
)

// goLoadTimeout bounds one request, like wrk's default --timeout 2s; a
// request past it counts as a socket error.
const goLoadTimeout = 2 * time.Second

// initialSamples is the latency capacity each connection starts with.
const initialSamples = 1 << 12

// loadPercentiles are the latency percentiles reported, as wrk prints them.
var loadPercentiles = []int{50, 75, 90, 99}

// connStats is what one connection's loop recorded.
type connStats struct {
	latencies           []time.Duration // one per answered request
	requests            int64           // answered requests, any status
	sockErrs, badStatus int64
}

// runLoad runs the load generator o.Engine names against url; a
// WebSocket path always runs websocket.go's.
func runLoad(ctx context.Context, o wrkOptions, url string) (wrkResult, error) {
	if o.WS {
		return runWSLoad(ctx, o, url)
	}
	if o.Engine == loadGo {
		return runGoLoad(ctx, o, url)
	}
	return runWrk(ctx, o, url)
}

// runGoLoad loads rawURL over o.Connections connections for o.Duration and
// reports like wrk: answered requests, requests per second over the run,
// latency percentiles, socket errors and non-2xx/3xx answers.
func runGoLoad(ctx context.Context, o wrkOptions, rawURL string) (wrkResult, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return wrkResult{}, err
	}
	if u.Scheme != "http" || u.Host == "" || o.Connections < 1 {
		return wrkResult{}, fmt.Errorf("load %q with %d connections: want an http:// URL and at least 1", rawURL, o.Connections)
	}
	hc := newLoadClient(u.Host, o.Connections)
	defer hc.CloseIdleConnections()
	var stop atomic.Bool
	timer := time.AfterFunc(o.Duration, func() { stop.Store(true) })
	defer timer.Stop()
	defer context.AfterFunc(ctx, func() { stop.Store(true) })()
	stats := make([]connStats, o.Connections)
	body := postBody(o.Body) // one copy, shared read-only by every loop
	start := time.Now()
	var wg sync.WaitGroup
	for i := range stats {
		wg.Go(func() { stats[i] = loadLoop(hc, rawURL, body, &stop) })
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return wrkResult{}, err
	}
	return mergeStats(stats, time.Since(start)), nil
}

// newLoadClient returns a client holding at most conns connections to addr,
// which neither retries a failed request nor waits long for a connection.
func newLoadClient(addr string, conns int) *fasthttp.HostClient {
	return &fasthttp.HostClient{
		Addr:                      addr,
		MaxConns:                  conns,
		MaxConnWaitTimeout:        goLoadTimeout,
		MaxIdemponentCallAttempts: 1, // wrk does not retry: an error counts
		ReadTimeout:               goLoadTimeout,
		WriteTimeout:              goLoadTimeout,
		NoDefaultUserAgentHeader:  true,
	}
}

// loadLoop sends url (GET, or POST of body when there is one) until stop is
// set and returns what it saw. Its counters are locals, written out once,
// so loops share no cache line.
func loadLoop(hc *fasthttp.HostClient, url string, body []byte, stop *atomic.Bool) connStats {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	setLoadRequest(req, url, body)
	lat := make([]time.Duration, 0, initialSamples)
	var n, sockErrs, bad int64
	for !stop.Load() {
		t0 := time.Now()
		err := hc.Do(req, resp)
		took := time.Since(t0)
		if err != nil {
			sockErrs++
			continue
		}
		n++
		lat = append(lat, took)
		if c := resp.StatusCode(); c < 200 || c > 399 {
			bad++
		}
	}
	return connStats{latencies: lat, requests: n, sockErrs: sockErrs, badStatus: bad}
}

// setLoadRequest makes req a GET of url or, with a body, a POST of it.
// The body is not copied: the loops share it and never change it.
func setLoadRequest(req *fasthttp.Request, url string, body []byte) {
	req.SetRequestURI(url)
	if body == nil {
		return
	}
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.SetContentType(postContentType)
	req.SetBodyRaw(body)
}

// mergeStats sums the connections' counts and computes exact percentiles
// over all their latencies.
func mergeStats(stats []connStats, elapsed time.Duration) wrkResult {
	res := wrkResult{Elapsed: elapsed, Latency: map[int]time.Duration{}}
	total := 0
	for _, s := range stats {
		total += len(s.latencies)
	}
	all := make([]time.Duration, 0, total)
	for _, s := range stats {
		all = append(all, s.latencies...)
		res.Requests += s.requests
		res.SockErrs += s.sockErrs
		res.BadStatus += s.badStatus
	}
	slices.Sort(all)
	for _, p := range loadPercentiles {
		res.Latency[p] = percentile(all, p)
	}
	if elapsed > 0 {
		res.RPS = float64(res.Requests) / elapsed.Seconds()
	}
	return res
}

// errPercentile reports a percentile outside 1..100.
var errPercentile = errors.New("percentile must be in 1..100")

// percentile returns the p-th percentile (1..100) of sorted samples by the
// nearest-rank method: the smallest sample that at least p% of the samples
// do not exceed. Zero without samples; it panics for p outside 1..100.
func percentile(sorted []time.Duration, p int) time.Duration {
	if p < 1 || p > 100 {
		panic(errPercentile)
	}
	if len(sorted) == 0 {
		return 0
	}
	rank := (p*len(sorted) + 99) / 100 // ceil(p/100 × n), in integers
	return sorted[rank-1]
}
