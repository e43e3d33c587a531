package admin_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/procbal/procbal/balancer/admin"
	"github.com/procbal/procbal/balancer/pool"
	"github.com/procbal/procbal/balancer/supervisor"
)

// unixHealth serves 200 on a unix socket, as a remote upstream, and
// returns its address.
func unixHealth(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "au")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	ln, err := net.Listen("unix", filepath.Join(dir, "u.sock"))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "unix:" + ln.Addr().String()
}

// /admin/upstreams over a real supervisor (no local worker): each answer's
// status and body, and a set that bad requests leave as it was.
func TestUpstreamsAPI(t *testing.T) {
	t.Parallel()
	first, second := unixHealth(t), unixHealth(t)
	log := hclog.NewNullLogger()
	sel, _ := pool.NewSelector("round_robin")
	p := pool.New(sel, pool.OutlierOptions{}, log)
	dir, err := os.MkdirTemp("", "as")
	if err != nil {
		t.Fatal(err)
	}
	sup := supervisor.New(supervisor.Config{SocketDir: dir, Upstreams: []string{first}, DrainTimeout: time.Second},
		p, pool.CheckOptions{Path: "/healthz", Interval: 50 * time.Millisecond, Timeout: time.Second, UnhealthyThreshold: 2, HealthyThreshold: 1}, log)
	done := make(chan struct{})
	go func() { sup.Run(); close(done) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		sup.Shutdown(ctx)
		<-done
	})
	h := admin.New(admin.Options{Pool: p, Supervisor: sup, Log: log, WorkerLimit: 4, AllowZero: true, OpTimeout: time.Second})
	call := func(method, path, body string, v any) int {
		t.Helper()
		w := req{method: method, path: path, host: "127.0.0.1:3002", body: body}.do(h)
		if w.Header().Get("Content-Type") != "application/json" {
			t.Fatalf("%s %s: content type %q", method, path, w.Header().Get("Content-Type"))
		}
		if v != nil {
			if err := json.Unmarshal(w.Body.Bytes(), v); err != nil {
				t.Fatalf("%s %s: %v in %s", method, path, err, w.Body.String())
			}
		}
		return w.Code
	}
	list := func() admin.UpstreamList {
		var l admin.UpstreamList
		if code := call("GET", "/admin/upstreams", "", &l); code != 200 {
			t.Fatalf("GET: %d", code)
		}
		return l
	}
	deadline := time.Now().Add(10 * time.Second)
	for p.Healthy() != 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if l := list(); len(l.Upstreams) != 1 || l.Upstreams[0].State != "healthy" || l.Upstreams[0].Source != "UPSTREAMS" ||
		l.Upstreams[0].LastCheckAt == "" || l.Entries[0].Address != first {
		t.Fatalf("GET /admin/upstreams: %+v", l)
	}

	var added admin.UpstreamChange
	if code := call("POST", "/admin/upstreams", `{"address": "`+second+`", "weight": 4}`, &added); code != 201 ||
		len(added.Upstreams) != 1 || added.Upstreams[0].Weight != 4 || added.Entry.Source != "api" {
		t.Fatalf("POST: %d %+v", code, added)
	}
	id := added.Upstreams[0].ID
	before := list()
	for _, c := range []struct {
		method, path, body string
		status             int
	}{
		{"POST", "/admin/upstreams", `{"weight": 2}`, 400},
		{"POST", "/admin/upstreams", `{"address": "127.0.0.9:1"} {}`, 400},
		{"POST", "/admin/upstreams", `{"address": "nonsense"}`, 422},
		{"POST", "/admin/upstreams", `{"address": "127.0.0.9:1", "weight": 0}`, 422},
		{"POST", "/admin/upstreams", `{"address": "127.0.0.9:1", "weight": 1e9}`, 422},
		{"POST", "/admin/upstreams", `{"address": "` + second + `"}`, 409},
		{"DELETE", "/admin/upstreams/999", "", 404},
		{"DELETE", "/admin/upstreams/-3", "", 400},
		{"PATCH", "/admin/upstreams", "", 405},
	} {
		var e map[string]string
		if code := call(c.method, c.path, c.body, &e); code != c.status || e["error"] == "" {
			t.Errorf("%s %s %s: %d %v, want %d with an error", c.method, c.path, c.body, code, e, c.status)
		}
	}
	if after := list(); len(after.Entries) != len(before.Entries) || len(after.Upstreams) != len(before.Upstreams) {
		t.Fatalf("refused requests changed the set: %+v", after)
	}
	var removed admin.UpstreamChange
	if code := call("DELETE", "/admin/upstreams/"+strconv.Itoa(id), "", &removed); code != 200 || len(removed.Removed) != 1 || removed.Removed[0] != id {
		t.Fatalf("DELETE: %d %+v", code, removed)
	}
	if l := list(); len(l.Entries) != 1 {
		t.Fatalf("after DELETE: %+v", l.Entries)
	}
	var workers admin.Report
	if code := call("GET", "/admin/workers", "", &workers); code != 200 || len(workers.Workers) == 0 || workers.Workers[0].LastCheckAt == "" {
		t.Fatalf("/admin/workers: %d %+v", code, workers)
	}
}
