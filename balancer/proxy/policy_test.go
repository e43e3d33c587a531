package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/procbal/procbal/balancer/pool"
	"github.com/procbal/procbal/balancer/proxy/wire"
)

// The policy layer's rules, driven without sockets (issue 9 item 2).

func TestRetryRule(t *testing.T) {
	t.Parallel()
	dial := &pool.DialError{Err: errors.New("refused")}
	for _, tt := range []struct {
		name                   string
		err                    error
		idempotent, replayable bool
		want                   bool
	}{
		{"dial failure, POST, body streamed", dial, false, false, true},
		{"dial failure, GET", dial, true, true, true},
		{"closed, GET, whole request", errUpstreamClosed, true, true, true},
		{"closed, GET, body streamed", errUpstreamClosed, true, false, false},
		{"closed, POST, whole request", errUpstreamClosed, false, true, false},
		{"malformed answer, GET", errBadResponse, true, true, true},
		{"timeout, GET", errUpstreamTime, true, true, false},
	} {
		if got := retryAllowed(tt.err, tt.idempotent, tt.replayable); got != tt.want {
			t.Errorf("%s: retry %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestErrorAnswers(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		err    error
		status int
		msg    string
	}{
		{pool.ErrNoUpstream, 503, "no healthy upstream"},
		{&localError{errors.New("too many open files")}, 503, "balancer out of resources"},
		{errUpstreamTime, 504, "upstream timed out"},
		{errUpstreamClosed, 502, "upstream unreachable"},
		{&pool.DialError{Err: errors.New("refused")}, 502, "upstream unreachable"},
	} {
		status, msg := errorAnswer(tt.err)
		if status != tt.status || msg != tt.msg {
			t.Errorf("%v: %d %q, want %d %q", tt.err, status, msg, tt.status, tt.msg)
		}
		for _, conn := range []string{"", "close", "keep-alive"} {
			raw := appendErrorAnswer(nil, status, msg, conn)
			resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(raw)), nil)
			if err != nil {
				t.Fatalf("%q: %v", raw, err)
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != status || string(body) != `{"error":"`+msg+`"}`+"\n" ||
				resp.Header.Get("Content-Type") != "application/json" ||
				(resp.Header.Get("Retry-After") != "") != (status == 503) ||
				strings.Contains(string(raw), "Connection:") != (conn != "") ||
				conn != "" && !strings.Contains(string(raw), "\r\nConnection: "+conn+"\r\n") {
				t.Errorf("answer %q", raw)
			}
		}
	}
}

func TestConnectionHeader(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		close bool
		minor int
		want  string
	}{{true, 1, "close"}, {true, 0, "close"}, {false, 1, ""}, {false, 0, "keep-alive"}} {
		if got := connectionHeader(tt.close, tt.minor); got != tt.want {
			t.Errorf("close=%v minor=%d: %q, want %q", tt.close, tt.minor, got, tt.want)
		}
	}
}

func TestForwardingIdentity(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ in, want []string }{
		{[]string{"GET / HTTP/1.1", "Host: a", "X-Forwarded-For: 1.1.1.1", "X-Forwarded-Proto: https", "X-Forwarded-Host: evil"},
			[]string{"X-Forwarded-For: 1.1.1.1, 10.0.0.9", "X-Forwarded-Proto: http", "X-Forwarded-Host: a", "X-Request-Id: new-id"}},
		{[]string{"GET / HTTP/1.1", "Host: a", "X-Request-Id: theirs"},
			[]string{"X-Forwarded-For: 10.0.0.9", "X-Request-Id: theirs"}},
		{[]string{"POST / HTTP/1.1", "Host: a", "Expect: 100-continue", "Content-Length: 1"},
			[]string{"Content-Length: 1", "X-Request-Id: new-id"}},
	} {
		buf := []byte(strings.Join(tt.in, "\r\n") + "\r\n\r\n")
		var h wire.RequestHead
		if err := wire.ParseRequest(buf, wire.Limits{}, &h); err != nil {
			t.Fatal(err)
		}
		out := string(wire.AppendRequest(nil, buf, &h, identity(&h, []byte("10.0.0.9"), []byte("l:1"), []byte("new-id"), true)))
		for _, w := range tt.want {
			if !strings.Contains(out, "\r\n"+w+"\r\n") {
				t.Errorf("%q: no %q in\n%s", tt.in, w, out)
			}
		}
		if strings.Contains(out, "evil") || strings.Contains(out, "https") || strings.Contains(out, "Expect") {
			t.Errorf("%q: client's forwarding headers or Expect passed:\n%s", tt.in, out)
		}
	}
}

// countingObserver counts observations per upstream id and status.
type countingObserver struct {
	mu  sync.Mutex
	got []string
}

func (o *countingObserver) Observe(u *pool.Upstream, status int, d time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if d < 0 {
		status = -1
	}
	o.got = append(o.got, u.Address+":"+http.StatusText(status))
}

// Every attempt is released, reported and observed exactly once, whatever
// its outcome.
func TestAttemptAccountedOnce(t *testing.T) {
	t.Parallel()
	p := pool.New(&pool.RoundRobin{}, pool.OutlierOptions{Consecutive: 100}, hclog.NewNullLogger())
	u := pool.NewUpstream(1, pool.Local, "u")
	u.SetState(pool.Healthy)
	p.Publish([]*pool.Upstream{u})
	obs := &countingObserver{}
	for _, tt := range []struct {
		outcome, status int
		failures        uint64
		want            string
	}{
		{answered, 200, 0, "u:OK"},
		{upstreamFailed, 200, 1, "u:"},
		{notUpstream, 0, 1, "u:"},
	} {
		var a attempt
		var tried pool.Tried
		if !a.pick(p, &tried, &stickiness{}, 100) || a.u != u || u.Inflight() != 1 {
			t.Fatalf("pick: %v, in flight %d", a.u, u.Inflight())
		}
		a.end(p, obs, tt.outcome, tt.status, 150)
		a.end(p, obs, tt.outcome, tt.status, 200) // a second end does nothing
		if u.Inflight() != 0 || u.Failures() != tt.failures {
			t.Errorf("outcome %d: in flight %d, failures %d", tt.outcome, u.Inflight(), u.Failures())
		}
		if last := obs.got[len(obs.got)-1]; len(obs.got) == 0 || last != tt.want {
			t.Errorf("outcome %d: observed %v, want last %q", tt.outcome, obs.got, tt.want)
		}
		if a.pick(p, &tried, &stickiness{}, 300) {
			t.Error("picked an upstream already tried")
		}
	}
	if len(obs.got) != 3 {
		t.Errorf("%d observations for 3 attempts: %v", len(obs.got), obs.got)
	}
	var zero attempt
	zero.end(p, obs, answered, 200, 0)
	if len(obs.got) != 3 {
		t.Error("a zero attempt was observed")
	}
}
