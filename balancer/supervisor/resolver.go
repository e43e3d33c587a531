package supervisor

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/miekg/dns"
)

// The resolver of remote upstreams' DNS names. It is github.com/miekg/dns
// rather than net.Resolver because the standard resolver hides what an
// operator of a pool needs: the records' TTL (honoured when shorter than
// DNS_REFRESH, so a name with a 5 s TTL is followed within 5 s), and the
// difference between "the server says there is no such name" and "the
// server failed" (both keep the last known set, but only a successful
// answer may shrink it). It reads /etc/hosts first and then asks the
// nameservers of /etc/resolv.conf, with its search list, ndots, timeout
// and attempts, as the C library's stub resolver does; DNS_SERVER replaces
// the nameservers only.

const (
	// minDNSInterval bounds how often a name with a very short TTL is
	// looked up again (TTL 0 included).
	minDNSInterval = time.Second
	// dnsServerTimeout and dnsServerAttempts apply to DNS_SERVER, where
	// resolv.conf's timeout and attempts options do not.
	dnsServerTimeout  = time.Second
	dnsServerAttempts = 2
	resolvConfPath    = "/etc/resolv.conf"
	hostsPath         = "/etc/hosts"
)

// dnsResolver looks names up for remote upstreams. Its fields are set
// before first use; it is safe for concurrent use.
type dnsResolver struct {
	// servers, "ip:port", replace resolv.conf's nameservers (DNS_SERVER).
	servers    []string
	resolvConf string
	hosts      string
}

// family is the answer for one record type.
type family struct {
	addrs []netip.Addr
	// ttl is the smallest TTL of the records, at least minDNSInterval;
	// 0 when there are none (or they came from the hosts file).
	ttl time.Duration
	// err is nil for an answer, records or none (NXDOMAIN, or no record
	// of the type), and says why there is none when the lookup failed.
	err error
}

// lookup is what one resolution of a name gave, A and AAAA apart.
type lookup struct {
	v4, v6 family
}

// resolvSettings is what one lookup takes from resolv.conf and DNS_SERVER.
type resolvSettings struct {
	servers  []string
	conf     *dns.ClientConfig
	timeout  time.Duration
	attempts int
}

func (r *dnsResolver) settings() resolvSettings {
	conf, err := dns.ClientConfigFromFile(r.resolvConf)
	if err != nil {
		conf = &dns.ClientConfig{Ndots: 1, Timeout: 5, Attempts: 2, Port: "53"}
	}
	st := resolvSettings{conf: conf, timeout: time.Duration(max(conf.Timeout, 1)) * time.Second, attempts: max(conf.Attempts, 1)}
	if len(r.servers) > 0 {
		st.servers, st.timeout, st.attempts = r.servers, dnsServerTimeout, dnsServerAttempts
		return st
	}
	for _, s := range conf.Servers {
		st.servers = append(st.servers, net.JoinHostPort(s, conf.Port))
	}
	if len(st.servers) == 0 { // as the C library and Go do without a nameserver line
		st.servers = []string{"127.0.0.1:53", "[::1]:53"}
	}
	return st
}

// lookup resolves host: from the hosts file when it is there, "localhost"
// and its subdomains to loopback (RFC 6761), else A and AAAA records from
// DNS, trying the search list's names in turn until one has an address.
func (r *dnsResolver) lookup(ctx context.Context, host string) lookup {
	if addrs := r.fromHosts(host); len(addrs) > 0 {
		return splitFamilies(addrs)
	}
	if h := strings.TrimSuffix(strings.ToLower(host), "."); h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return splitFamilies([]netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback()})
	}
	st := r.settings()
	var res lookup
	for _, name := range st.conf.NameList(host) {
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); res.v4 = query(ctx, st, name, dns.TypeA) }()
		go func() { defer wg.Done(); res.v6 = query(ctx, st, name, dns.TypeAAAA) }()
		wg.Wait()
		if res.v4.err != nil || res.v6.err != nil || len(res.v4.addrs)+len(res.v6.addrs) > 0 {
			return res // a failure stops the search, as an answer does
		}
	}
	return res
}

func splitFamilies(addrs []netip.Addr) lookup {
	var res lookup
	for _, a := range addrs {
		if a.Is4() {
			res.v4.addrs = append(res.v4.addrs, a)
		} else {
			res.v6.addrs = append(res.v6.addrs, a)
		}
	}
	return res
}

// query asks the servers in turn, attempts times over, for name's records
// of type qtype; a server that fails (SERVFAIL, REFUSED, no answer in
// time) passes the question to the next.
func query(ctx context.Context, st resolvSettings, name string, qtype uint16) family {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.SetEdns0(1232, false)
	var lastErr error
	for range st.attempts {
		for _, srv := range st.servers {
			c := &dns.Client{Net: "udp", Timeout: st.timeout}
			resp, _, err := c.ExchangeContext(ctx, m, srv)
			if err == nil && resp.Truncated {
				c.Net = "tcp"
				resp, _, err = c.ExchangeContext(ctx, m, srv)
			}
			if ctx.Err() != nil {
				return family{err: ctx.Err()}
			}
			switch {
			case err != nil:
				lastErr = fmt.Errorf("%s %s: %w", dns.TypeToString[qtype], srv, err)
			case resp.Rcode == dns.RcodeSuccess:
				return records(resp, qtype)
			case resp.Rcode == dns.RcodeNameError:
				return family{} // NXDOMAIN: an answer, with no address
			default:
				lastErr = fmt.Errorf("%s %s: answered %s", dns.TypeToString[qtype], srv, dns.RcodeToString[resp.Rcode])
			}
		}
	}
	if lastErr == nil {
		lastErr = errors.New("no nameserver")
	}
	return family{err: lastErr}
}

// records collects the addresses of an answer (following CNAMEs, whose
// records come with it) and its smallest TTL.
func records(resp *dns.Msg, qtype uint16) family {
	var f family
	var ttl uint32
	for _, rr := range resp.Answer {
		var ip net.IP
		switch rr := rr.(type) {
		case *dns.A:
			if qtype == dns.TypeA {
				ip = rr.A
			}
		case *dns.AAAA:
			if qtype == dns.TypeAAAA {
				ip = rr.AAAA
			}
		case *dns.CNAME:
		default:
			continue
		}
		if t := rr.Header().Ttl; ttl == 0 || t < ttl {
			ttl = t
		}
		if a, ok := netip.AddrFromSlice(ip); ok {
			f.addrs = append(f.addrs, a.Unmap())
		}
	}
	if len(f.addrs) > 0 {
		f.ttl = max(time.Duration(ttl)*time.Second, minDNSInterval)
	}
	return f
}

// fromHosts returns host's addresses in the hosts file, if any.
func (r *dnsResolver) fromHosts(host string) []netip.Addr {
	f, err := os.Open(r.hosts)
	if err != nil {
		return nil
	}
	defer f.Close()
	host = strings.TrimSuffix(host, ".")
	var out []netip.Addr
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		a, err := netip.ParseAddr(fields[0])
		if err != nil {
			continue
		}
		for _, name := range fields[1:] {
			if strings.EqualFold(strings.TrimSuffix(name, "."), host) && !slices.Contains(out, a.Unmap()) {
				out = append(out, a.Unmap())
			}
		}
	}
	return out
}

// nameState is what the watcher of one name keeps between lookups: the
// last known addresses of each family, and whether it is in an outage.
type nameState struct {
	entry          string
	port           string
	known4, known6 []netip.Addr
	// ttl is the smallest TTL of the last good answer, 0 when none came.
	ttl         time.Duration
	outage      bool
	outageSince time.Time
}

// update takes one lookup's result and returns the addresses to use. A
// failed or empty lookup keeps the last known set; a family that failed
// keeps its last known addresses while the other's answer is taken. The
// first failure of an outage is a warning, its end one info line.
func (n *nameState) update(res lookup, log hclog.Logger) []string {
	new4, new6 := n.known4, n.known6
	if res.v4.err == nil {
		new4 = res.v4.addrs
	}
	if res.v6.err == nil {
		new6 = res.v6.addrs
	}
	failed := errors.Join(res.v4.err, res.v6.err)
	switch {
	case len(new4)+len(new6) == 0:
		if failed == nil {
			failed = errors.New("no A or AAAA record")
		}
		n.down(failed, log)
	case failed != nil:
		n.known4, n.known6 = new4, new6
		n.down(failed, log)
	default:
		n.known4, n.known6 = new4, new6
		n.ttl = res.ttl()
		if n.outage {
			n.outage = false
			log.Info("DNS lookup recovered", "upstream", n.entry, "addresses", len(new4)+len(new6),
				"outage", time.Since(n.outageSince).Round(time.Millisecond))
		}
	}
	return n.addrs()
}

func (n *nameState) down(err error, log hclog.Logger) {
	if n.outage {
		log.Debug("DNS lookup failed again", "upstream", n.entry, "error", err)
		return
	}
	n.outage, n.outageSince = true, time.Now()
	log.Warn("DNS lookup failed, keeping the last known addresses", "upstream", n.entry,
		"known", len(n.known4)+len(n.known6), "error", err)
}

// addrs is the known set as upstream addresses, sorted.
func (n *nameState) addrs() []string {
	out := make([]string, 0, len(n.known4)+len(n.known6))
	for _, a := range slices.Concat(n.known4, n.known6) {
		out = append(out, net.JoinHostPort(a.String(), n.port))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// interval is the time to the next lookup: refresh, or the TTL of the
// last good answer when shorter (records keep it through an outage, so a
// short-lived name is asked again as often while its server is down).
func (n *nameState) interval(refresh time.Duration) time.Duration {
	if n.ttl > 0 && n.ttl < refresh {
		return n.ttl
	}
	return refresh
}

// ttl is the smallest TTL of the records of both families, 0 when none
// has one.
func (res lookup) ttl() time.Duration {
	var ttl time.Duration
	for _, f := range []family{res.v4, res.v6} {
		if f.ttl > 0 && (ttl == 0 || f.ttl < ttl) {
			ttl = f.ttl
		}
	}
	return ttl
}

// addrs is every address of a lookup.
func (res lookup) addrs() []netip.Addr { return slices.Concat(res.v4.addrs, res.v6.addrs) }

// seed starts the state from a lookup done already (by POST
// /admin/upstreams).
func (n *nameState) seed(res lookup) {
	n.known4, n.known6 = res.v4.addrs, res.v6.addrs
	n.ttl = res.ttl()
}

// watchName resolves e's name until ctx ends, every interval, and sends
// the loop each set of addresses that differs from the last one sent.
// seeded is a lookup already done and applied, or nil.
func (s *Supervisor) watchName(ctx context.Context, e *entry, seeded *lookup) {
	n := &nameState{entry: e.Address, port: e.Port}
	var sent []string
	if seeded != nil {
		n.seed(*seeded)
		sent = n.addrs()
	}
	for first := seeded == nil; ; first = false {
		if !first {
			t := time.NewTimer(n.interval(s.cfg.DNSRefresh))
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		res := s.rs.dns.lookup(ctx, e.Host)
		if ctx.Err() != nil {
			return // removed, or shutting down: no outage to report
		}
		addrs := n.update(res, s.log)
		if len(addrs) == 0 || slices.Equal(addrs, sent) {
			continue
		}
		sent = addrs
		select {
		case s.resolved <- resolution{ent: e, addrs: addrs}:
		case <-ctx.Done():
			return
		case <-s.done:
			return
		}
	}
}
