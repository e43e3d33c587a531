package supervisor

import (
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/procbal/procbal/balancer/pool"
)

// remoteServer serves the health path on a unix socket, as a remote
// upstream would, and returns its UPSTREAMS entry.
func remoteServer(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "rm")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "r.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "unix:" + sock
}

// A remote upstream whose address is gone (DNS no longer gives it) goes
// through the same drain as a local worker: out of rotation at once, kept
// while it has requests in flight, then forgotten. An address that comes
// back gets a new upstream.
func TestRemoteGoneIsDrained(t *testing.T) {
	t.Parallel()
	addr := remoteServer(t)
	h := newHarness(t, 0, "serve", func(c *Config) { c.Upstreams = []string{addr}; c.DrainTimeout = 20 * time.Second })
	h.waitFor(20*time.Second, "the remote upstream healthy", func() bool { return h.pool.Healthy() == 1 })
	u := h.pool.Upstreams()[0]
	if u.Kind != pool.Remote || u.ID != remoteIDBase+1 || u.Address != addr || !u.Acquire() {
		t.Fatalf("remote upstream %+v", u)
	}
	h.sup.resolved <- nil // as a DNS refresh that no longer gives the address
	h.waitFor(5*time.Second, "the remote draining", func() bool { return u.State() == pool.Draining })
	time.Sleep(100 * time.Millisecond)
	if !slices.Contains(h.pool.Upstreams(), u) {
		t.Fatal("a remote with a request in flight was dropped before it drained")
	}
	u.Release(200)
	h.waitFor(5*time.Second, "the drained remote dropped", func() bool {
		return !slices.Contains(h.pool.Upstreams(), u) && len(h.sup.Workers()) == 0
	})
	if u.State() != pool.Stopped {
		t.Fatalf("dropped remote in state %s, want stopped", u.State())
	}
	h.sup.resolved <- []string{addr}
	h.waitFor(20*time.Second, "the address back as a new upstream", func() bool {
		ups := h.pool.Upstreams()
		return len(ups) == 1 && ups[0].ID == remoteIDBase+2 && ups[0].Available()
	})
}

func TestResolveKeepsAddressesAndExpandsNames(t *testing.T) {
	t.Parallel()
	got := resolve([]string{"unix:/x.sock", "127.0.0.1:81", "localhost:82"}, nopWarn{})
	if !slices.Contains(got, "unix:/x.sock") || !slices.Contains(got, "127.0.0.1:81") || !slices.Contains(got, "127.0.0.1:82") {
		t.Fatalf("resolve = %v", got)
	}
	if !slices.IsSorted(got) {
		t.Fatalf("resolve = %v, want sorted", got)
	}
	if hasNames([]string{"unix:/x.sock", "10.0.0.1:80", "[::1]:80"}) || !hasNames([]string{"10.0.0.1:80", "db.internal:80"}) {
		t.Fatal("hasNames tells addresses from names wrongly")
	}
}

type nopWarn struct{}

func (nopWarn) Warn(string, ...any) {}
