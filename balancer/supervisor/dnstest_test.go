package supervisor

import (
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/miekg/dns"
)

// testDNS is a DNS server on loopback UDP whose answers a test changes:
// A and AAAA records per name, or every question answered SERVFAIL, or
// none answered at all. Unknown names get NXDOMAIN.
type testDNS struct {
	addr    string
	queries atomic.Int64

	mu    sync.Mutex
	mode  string // "answer", "servfail" or "silent"
	names map[string][]netip.Addr
	ttl   uint32
}

func startTestDNS(t *testing.T) *testDNS {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &testDNS{addr: pc.LocalAddr().String(), mode: "answer", names: map[string][]netip.Addr{}, ttl: 60}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(d.serve)}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go srv.ActivateAndServe()
	<-started
	t.Cleanup(func() { srv.Shutdown() })
	return d
}

// set makes name (without the trailing dot) resolve to addrs.
func (d *testDNS) set(name string, addrs ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var list []netip.Addr
	for _, a := range addrs {
		list = append(list, netip.MustParseAddr(a))
	}
	d.names[dns.Fqdn(strings.ToLower(name))] = list
}

func (d *testDNS) setMode(mode string) {
	d.mu.Lock()
	d.mode = mode
	d.mu.Unlock()
}

func (d *testDNS) setTTL(ttl uint32) {
	d.mu.Lock()
	d.ttl = ttl
	d.mu.Unlock()
}

func (d *testDNS) serve(w dns.ResponseWriter, r *dns.Msg) {
	d.queries.Add(1)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.mode == "silent" || len(r.Question) != 1 {
		return
	}
	m := new(dns.Msg)
	m.SetReply(r)
	q := r.Question[0]
	addrs, known := d.names[strings.ToLower(q.Name)]
	switch {
	case d.mode == "servfail":
		m.Rcode = dns.RcodeServerFailure
	case !known:
		m.Rcode = dns.RcodeNameError
	default:
		for _, a := range addrs {
			hdr := dns.RR_Header{Name: q.Name, Class: dns.ClassINET, Ttl: d.ttl}
			switch {
			case a.Is4() && q.Qtype == dns.TypeA:
				hdr.Rrtype = dns.TypeA
				m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: a.AsSlice()})
			case a.Is6() && q.Qtype == dns.TypeAAAA:
				hdr.Rrtype = dns.TypeAAAA
				m.Answer = append(m.Answer, &dns.AAAA{Hdr: hdr, AAAA: a.AsSlice()})
			}
		}
	}
	w.WriteMsg(m)
}
