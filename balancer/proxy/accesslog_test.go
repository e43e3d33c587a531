//go:build linux

package proxy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/procbal/procbal/balancer/proxy"
)

// lockedBuffer is an io.Writer tests can read while the engine writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := strings.TrimSuffix(l.b.String(), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// Issue 14: one access log line per request, retried and failed ones
// included, with every field.
func TestAccessLogJSON(t *testing.T) {
	t.Parallel()
	cl := startCloser(t)
	good := startBackend(t, func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("ok") })
	p, ups := newPool(t, cl.addr, good.addr)
	out := &lockedBuffer{}
	o := testEngineOptions
	o.AccessLog, o.AccessLogOut = proxy.AccessLogJSON, out
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := proxy.NewEngine(p, nil, failOnError(t), o)
	go func() { _ = e.Serve(ln) }()
	front := ln.Addr().String()

	c, br := dialFront(t, front)
	// 1: goes to the closer first, is retried on the good upstream.
	_, _ = io.WriteString(c, "GET /first?"+strings.Repeat("q", 300)+" HTTP/1.1\r\nHost: a\r\nX-Request-Id: rid-1\r\n\r\n")
	if resp, _ := readResp(t, br, "GET"); resp.StatusCode != 200 {
		t.Fatalf("first: %d", resp.StatusCode)
	}
	// 2: a POST the closer gets: not retried, 502.
	_, _ = io.WriteString(c, "POST /second HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc")
	if resp, _ := readResp(t, br, "POST"); resp.StatusCode != 502 {
		t.Fatalf("second: %d", resp.StatusCode)
	}
	// 3: a malformed head: 400.
	if resp, _, _ := rawExchange(t, front, "GET /bad\x01 HTTP/1.1\r\nHost: a\r\n\r\n"); resp == nil || resp.StatusCode != 400 {
		t.Fatalf("third: %v", resp)
	}
	_ = ups
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_ = e.ShutdownWithContext(ctx) // flushes the log
	lines := out.lines()
	if len(lines) != 3 {
		t.Fatalf("%d lines for 3 requests:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	type entry struct {
		Time      string  `json:"time"`
		RequestID string  `json:"request_id"`
		Client    string  `json:"client"`
		Method    string  `json:"method"`
		Path      string  `json:"path"`
		Status    int     `json:"status"`
		BytesIn   int64   `json:"bytes_in"`
		BytesOut  int64   `json:"bytes_out"`
		Upstream  int     `json:"upstream"`
		Attempts  int     `json:"attempts"`
		Duration  float64 `json:"duration_ms"`
	}
	var got []entry
	for _, l := range lines {
		var en entry
		dec := json.NewDecoder(strings.NewReader(l))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&en); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		if _, err := time.Parse(time.RFC3339Nano, en.Time); err != nil || en.Client != "127.0.0.1" || en.Duration < 0 {
			t.Errorf("line %q", l)
		}
		got = append(got, en)
	}
	if g := got[0]; g.Method != "GET" || !strings.HasPrefix(g.Path, "/first?q") || len(g.Path) > 200 ||
		g.Status != 200 || g.Attempts != 2 || g.Upstream != 2 || g.RequestID != "rid-1" || g.BytesOut == 0 || g.BytesIn == 0 {
		t.Errorf("retried request: %+v", g)
	}
	if g := got[1]; g.Method != "POST" || g.Path != "/second" || g.Status != 502 || g.Attempts != 1 || g.Upstream != 1 ||
		g.RequestID == "" || g.BytesIn < 3 {
		t.Errorf("failed request: %+v", g)
	}
	if g := got[2]; g.Status != 400 || g.Attempts != 0 {
		t.Errorf("refused request: %+v", g)
	}
}

func TestAccessLogText(t *testing.T) {
	t.Parallel()
	good := startBackend(t, func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("ok") })
	p, _ := newPool(t, good.addr)
	out := &lockedBuffer{}
	o := testEngineOptions
	o.AccessLog, o.AccessLogOut = proxy.AccessLogText, out
	front := startFrontWith(t, p, o)
	c := client(t, front)
	for range 5 {
		do(t, c, "GET", "/t?x=\"1\"", nil)
	}
	waitFor := time.Now().Add(3 * time.Second)
	for len(out.lines()) < 5 && time.Now().Before(waitFor) {
		time.Sleep(20 * time.Millisecond) // lines are handed over at each 100 ms sweep
	}
	lines := out.lines()
	if len(lines) != 5 {
		t.Fatalf("%d lines for 5 requests", len(lines))
	}
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) != 11 || f[1] != "127.0.0.1" || f[3] != `"GET` || f[4] != `/t?x=\"1\""` || f[5] != "200" ||
			!strings.HasPrefix(f[6], "in=") || f[8] != "upstream=1" || f[9][:3] != "att" {
			t.Errorf("line %q", l)
		}
	}
}
