package supervisor

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// testResolver asks only servers (never the machine's resolv.conf
// nameservers), with resolvConf's text as /etc/resolv.conf and hosts as
// /etc/hosts.
func testResolver(t *testing.T, resolvConf, hosts string, servers ...string) *dnsResolver {
	t.Helper()
	dir := t.TempDir()
	r := &dnsResolver{servers: servers, resolvConf: filepath.Join(dir, "resolv.conf"), hosts: filepath.Join(dir, "hosts")}
	for path, text := range map[string]string{r.resolvConf: resolvConf, r.hosts: hosts} {
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

func addrStrings(res lookup) []string {
	var out []string
	for _, a := range res.addrs() {
		out = append(out, a.String())
	}
	slices.Sort(out)
	return out
}

// A and AAAA both, with the smallest TTL; the search list of resolv.conf
// applies with DNS_SERVER too; the hosts file and localhost never reach DNS.
func TestLookupFamiliesTTLSearchAndHosts(t *testing.T) {
	t.Parallel()
	d := startTestDNS(t)
	d.set("workers.test", "127.0.0.2", "127.0.0.3", "::1")
	d.set("api.corp.test", "127.0.0.4")
	d.setTTL(3)
	r := testResolver(t, "search corp.test\noptions ndots:1\n", "127.0.0.9 pinned.test # a comment\n", d.addr)
	ctx := context.Background()

	res := r.lookup(ctx, "workers.test")
	if got := addrStrings(res); !slices.Equal(got, []string{"127.0.0.2", "127.0.0.3", "::1"}) || res.v4.err != nil || res.v6.err != nil {
		t.Fatalf("workers.test: %v (errors %v, %v)", got, res.v4.err, res.v6.err)
	}
	if res.ttl() != 3*time.Second {
		t.Fatalf("ttl %s, want 3s", res.ttl())
	}
	if got := addrStrings(r.lookup(ctx, "api")); !slices.Equal(got, []string{"127.0.0.4"}) {
		t.Fatalf("api with search corp.test: %v", got)
	}
	before := d.queries.Load()
	if got := addrStrings(r.lookup(ctx, "pinned.test")); !slices.Equal(got, []string{"127.0.0.9"}) {
		t.Fatalf("pinned.test from the hosts file: %v", got)
	}
	if got := addrStrings(r.lookup(ctx, "localhost")); !slices.Equal(got, []string{"127.0.0.1", "::1"}) {
		t.Fatalf("localhost: %v", got)
	}
	if n := d.queries.Load() - before; n != 0 {
		t.Fatalf("hosts-file and localhost lookups sent %d DNS queries", n)
	}
	res = r.lookup(ctx, "nothing.test")
	if res.v4.err != nil || res.v6.err != nil || len(res.addrs()) != 0 {
		t.Fatalf("NXDOMAIN is an empty answer, not a failure: %+v", res)
	}
}

// A server that fails passes the question to the next; when all fail,
// the lookup fails (and says why), it is not empty.
func TestLookupServerFailover(t *testing.T) {
	t.Parallel()
	bad, good := startTestDNS(t), startTestDNS(t)
	bad.setMode("servfail")
	good.set("w.test", "127.0.0.2")
	r := testResolver(t, "", "", bad.addr, good.addr)
	if got := addrStrings(r.lookup(context.Background(), "w.test")); !slices.Equal(got, []string{"127.0.0.2"}) {
		t.Fatalf("with the first server failing: %v", got)
	}
	good.setMode("servfail")
	res := r.lookup(context.Background(), "w.test")
	if res.v4.err == nil || res.v6.err == nil || !strings.Contains(res.v4.err.Error(), "SERVFAIL") {
		t.Fatalf("all servers failing: %+v", res)
	}
}

func TestNameStateKeepsLastKnownSet(t *testing.T) {
	t.Parallel()
	var logs logBuffer
	log := hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Info})
	n := &nameState{entry: "w.test:80", port: "80"}
	ip := func(s ...string) []netip.Addr {
		var out []netip.Addr
		for _, a := range s {
			out = append(out, netip.MustParseAddr(a))
		}
		return out
	}
	fail := errors.New("SERVFAIL")
	step := func(res lookup, want ...string) {
		t.Helper()
		if got := n.update(res, log); !slices.Equal(got, want) {
			t.Fatalf("update = %v, want %v", got, want)
		}
	}
	count := func(s string) int { return strings.Count(logs.String(), s) }

	step(lookup{v4: family{err: fail}, v6: family{err: fail}}) // nothing known yet
	if count("DNS lookup failed") != 1 {
		t.Fatalf("a first failure is one warning:\n%s", logs.String())
	}
	step(lookup{v4: family{addrs: ip("10.0.0.1", "10.0.0.2"), ttl: 5 * time.Second}, v6: family{addrs: ip("fd00::1")}},
		"10.0.0.1:80", "10.0.0.2:80", "[fd00::1]:80")
	if count("DNS lookup recovered") != 1 || n.interval(10*time.Second) != 5*time.Second || n.interval(2*time.Second) != 2*time.Second {
		t.Fatalf("recovery, interval %s:\n%s", n.interval(10*time.Second), logs.String())
	}
	all := []string{"10.0.0.1:80", "10.0.0.2:80", "[fd00::1]:80"}
	step(lookup{v4: family{err: fail}, v6: family{err: fail}}, all...)
	step(lookup{v4: family{err: context.DeadlineExceeded}, v6: family{err: context.DeadlineExceeded}}, all...)
	step(lookup{}, all...) // NXDOMAIN: empty, kept
	if count("DNS lookup failed") != 2 || count("DNS lookup recovered") != 1 {
		t.Fatalf("one warning per outage:\n%s", logs.String())
	}
	if n.interval(10*time.Second) != 5*time.Second {
		t.Fatal("the TTL of the last good answer is kept through an outage")
	}
	// A family that answers is taken, while the one that fails keeps its
	// last known addresses.
	step(lookup{v4: family{addrs: ip("10.0.0.2")}, v6: family{err: fail}}, "10.0.0.2:80", "[fd00::1]:80")
	step(lookup{v4: family{addrs: ip("10.0.0.2")}, v6: family{}}, "10.0.0.2:80")
	if count("DNS lookup failed") != 2 || count("DNS lookup recovered") != 2 {
		t.Fatalf("outage and recovery lines:\n%s", logs.String())
	}
}
