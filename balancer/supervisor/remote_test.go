package supervisor

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
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

// tcpServers serves the health path on one port of every ip, as remote
// hosts behind one DNS name would, and returns the port.
func tcpServers(t *testing.T, ips ...string) string {
	t.Helper()
	for range 50 {
		first, err := net.Listen("tcp", net.JoinHostPort(ips[0], "0"))
		if err != nil {
			t.Fatal(err)
		}
		_, port, _ := net.SplitHostPort(first.Addr().String())
		lns := []net.Listener{first}
		for _, ip := range ips[1:] {
			ln, err := net.Listen("tcp", net.JoinHostPort(ip, port))
			if err != nil {
				break
			}
			lns = append(lns, ln)
		}
		if len(lns) < len(ips) {
			for _, ln := range lns {
				ln.Close()
			}
			continue
		}
		for _, ln := range lns {
			srv := &http.Server{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})}
			go srv.Serve(ln)
			t.Cleanup(func() { srv.Close() })
		}
		return port
	}
	t.Fatal("no port free on every address")
	return ""
}

func addresses(ups []*pool.Upstream) []string {
	var out []string
	for _, u := range ups {
		if u.State() != pool.Draining && u.State() != pool.Stopped {
			out = append(out, u.Address)
		}
	}
	slices.Sort(out)
	return out
}

// A DNS name's addresses follow its answers: one that disappears from a
// successful answer drains as a local worker does (out of rotation at
// once, kept while it has a request in flight, then forgotten); SERVFAIL
// and silence keep the set, with one warning, and the answer coming back
// is one info line; an address that comes back gets a new upstream.
func TestRemoteDNSNameFollowsAnswers(t *testing.T) {
	t.Parallel()
	d := startTestDNS(t)
	port := tcpServers(t, "127.0.0.2", "127.0.0.3")
	d.set("workers.test", "127.0.0.2", "127.0.0.3")
	d.setTTL(1)
	h := newHarness(t, 0, "serve", func(c *Config) {
		c.Upstreams = []string{"workers.test:" + port + "=2"}
		c.DNSServers = []string{d.addr}
		c.DNSRefresh = time.Hour // the TTL (1s) sets the pace
		c.DrainTimeout = 20 * time.Second
	})
	a, b := "127.0.0.2:"+port, "127.0.0.3:"+port
	h.waitFor(20*time.Second, "both addresses healthy", func() bool { return h.pool.Healthy() == 2 })
	var ua *pool.Upstream
	for _, u := range h.pool.Upstreams() {
		if u.Kind != pool.Remote || u.Weight != 2 || u.ID <= remoteIDBase {
			t.Fatalf("remote upstream %+v", u)
		}
		if u.Address == a {
			ua = u
		}
	}
	if ua == nil || !ua.Acquire() {
		t.Fatalf("no upstream for %s in %v", a, addresses(h.pool.Upstreams()))
	}
	d.set("workers.test", "127.0.0.3")
	h.waitFor(5*time.Second, "the gone address draining", func() bool { return ua.State() == pool.Draining })
	time.Sleep(100 * time.Millisecond)
	if !slices.Contains(h.pool.Upstreams(), ua) {
		t.Fatal("a remote with a request in flight was dropped before it drained")
	}
	ua.Release(200)
	h.waitFor(5*time.Second, "the drained remote dropped", func() bool {
		return !slices.Contains(h.pool.Upstreams(), ua) && len(h.sup.Workers()) == 1
	})
	if ua.State() != pool.Stopped {
		t.Fatalf("dropped remote in state %s, want stopped", ua.State())
	}

	for _, mode := range []string{"servfail", "silent"} {
		d.setMode(mode)
		q := d.queries.Load()
		h.waitFor(10*time.Second, mode+" asked again", func() bool { return d.queries.Load() >= q+4 })
		if got := addresses(h.pool.Upstreams()); !slices.Equal(got, []string{b}) {
			t.Fatalf("%s: set %v, want the last known [%s]", mode, got, b)
		}
	}
	if n := strings.Count(h.log.String(), "DNS lookup failed, keeping the last known addresses"); n != 1 {
		t.Fatalf("%d outage warnings, want 1:\n%s", n, h.log.String())
	}
	d.set("workers.test", "127.0.0.2", "127.0.0.3")
	d.setMode("answer")
	h.waitFor(10*time.Second, "the address back as a new upstream", func() bool {
		return slices.Equal(addresses(h.pool.Upstreams()), []string{a, b}) && h.pool.Healthy() == 2
	})
	for _, u := range h.pool.Upstreams() {
		if u.Address == a && u.ID != remoteIDBase+3 {
			t.Fatalf("the address back has id %d, want %d", u.ID, remoteIDBase+3)
		}
	}
	if n := strings.Count(h.log.String(), "DNS lookup recovered"); n != 1 {
		t.Fatalf("%d recovery lines, want 1", n)
	}
}

// The runtime API adds and removes entries, refuses bad ones with the set
// unchanged, and persists the set in UpstreamsFile, which the next start
// reads instead of Upstreams.
func TestRemoteUpstreamAPI(t *testing.T) {
	t.Parallel()
	first, second := remoteServer(t), remoteServer(t)
	file := filepath.Join(t.TempDir(), "upstreams")
	h := newHarness(t, 1, "serve", func(c *Config) { c.Upstreams = []string{first}; c.UpstreamsFile = file })
	h.waitFor(20*time.Second, "a local worker and the remote healthy", func() bool { return h.pool.Healthy() == 2 })
	ctx := context.Background()
	fileHas := func(want ...string) {
		t.Helper()
		got, _, err := ReadUpstreamsFile(file)
		var list []string
		for _, e := range got {
			list = append(list, e.String())
		}
		if err != nil || !slices.Equal(list, want) {
			t.Fatalf("UPSTREAMS_FILE holds %v (%v), want %v", list, err, want)
		}
	}
	fileHas(first) // seeded from UPSTREAMS at start

	ch, err := h.sup.AddUpstream(ctx, second, 3)
	if err != nil || len(ch.Added) != 1 || ch.Entry.Source != SourceAPI || ch.Added[0].Upstream.Weight != 3 {
		t.Fatalf("AddUpstream = %+v, %v", ch, err)
	}
	id := ch.Added[0].Upstream.ID
	h.waitFor(20*time.Second, "the added remote healthy", func() bool { return h.pool.Healthy() == 3 })
	fileHas(first, second+"=3")

	before := h.sup.Upstreams()
	for _, c := range []struct {
		err  error
		call func() error
	}{
		{ErrUpstreamExists, func() error { _, err := h.sup.AddUpstream(ctx, second, 1); return err }},
		{ErrLocalWorker, func() error { _, err := h.sup.RemoveUpstream(ctx, 1); return err }},
		{ErrNoSuchUpstream, func() error { _, err := h.sup.RemoveUpstream(ctx, 1999); return err }},
		{ErrNoSuchUpstream, func() error { _, err := h.sup.RemoveUpstreamAddress(ctx, "127.0.0.9:1"); return err }},
	} {
		if err := c.call(); !errors.Is(err, c.err) {
			t.Errorf("got %v, want %v", err, c.err)
		}
	}
	for _, c := range []struct {
		addr   string
		weight int
	}{{"nonsense", 1}, {"127.0.0.1:0", 1}, {"unix:rel", 1}, {second + "=2", 1}, {"127.0.0.9:1", 0}, {"127.0.0.9:1", 1e9}} {
		var bad *BadUpstreamError
		if _, err := h.sup.AddUpstream(ctx, c.addr, c.weight); !errors.As(err, &bad) {
			t.Errorf("AddUpstream(%q, %d): %v, want a BadUpstreamError", c.addr, c.weight, err)
		}
	}
	if after := h.sup.Upstreams(); len(after.Entries) != len(before.Entries) || len(after.Upstreams) != len(before.Upstreams) {
		t.Fatalf("refused changes changed the set: %+v", after)
	}
	fileHas(first, second+"=3")

	// A write that fails refuses the change: the set stays as it was.
	os.Remove(file)
	if err := os.Mkdir(file, 0o700); err != nil { // rename cannot replace a directory
		t.Fatal(err)
	}
	var pe *PersistError
	if _, err := h.sup.RemoveUpstream(ctx, id); !errors.As(err, &pe) {
		t.Fatalf("RemoveUpstream with an unwritable file: %v", err)
	}
	if h.pool.Healthy() != 3 {
		t.Fatal("a refused removal took an upstream out")
	}
	os.Remove(file)

	ch, err = h.sup.RemoveUpstream(ctx, id)
	if err != nil || !slices.Equal(ch.Removed, []int{id}) {
		t.Fatalf("RemoveUpstream = %+v, %v", ch, err)
	}
	h.waitFor(10*time.Second, "the removed remote gone", func() bool { return len(h.pool.Upstreams()) == 2 })
	fileHas(first)
	if _, err := h.sup.RemoveUpstream(ctx, id); !errors.Is(err, ErrNoSuchUpstream) {
		t.Fatalf("removing it again: %v", err)
	}
	if _, err := h.sup.AddUpstream(ctx, second, 1); err != nil {
		t.Fatal(err)
	}
	h.shutdown(5 * time.Second)

	// The next start takes the file's set, not Upstreams.
	h2 := newHarness(t, 0, "serve", func(c *Config) { c.Upstreams = []string{first}; c.UpstreamsFile = file })
	h2.waitFor(20*time.Second, "the file's set healthy", func() bool { return h2.pool.Healthy() == 2 })
	v := h2.sup.Upstreams()
	t.Logf("after restart: %+v", v.Entries)
	if len(v.Entries) != 2 || v.Entries[0].Source != SourceFile || v.Entries[1].Address != second {
		t.Fatalf("entries after a restart: %+v", v.Entries)
	}
}
