package supervisor

import (
	"context"
	"net"
	"sort"
	"strings"
	"time"

	"github.com/procbal/procbal/balancer/pool"
)

// remoteIDBase numbers remote upstreams in reports (1001, 1002, ...), apart
// from local worker ids.
const remoteIDBase = 1000

// remote is one address of a remote upstream.
type remote struct {
	up     *pool.Upstream
	cancel context.CancelFunc
}

// startRemotes resolves UPSTREAMS once now, then again every DNSRefresh
// while any entry is a DNS name.
func (s *Supervisor) startRemotes() {
	if len(s.cfg.Upstreams) == 0 {
		return
	}
	s.applyResolved(resolve(s.cfg.Upstreams, s.log))
	if !hasNames(s.cfg.Upstreams) {
		return
	}
	go func() {
		t := time.NewTicker(s.cfg.DNSRefresh)
		defer t.Stop()
		for {
			select {
			case <-s.done:
				return
			case <-t.C:
				addrs := resolve(s.cfg.Upstreams, s.log)
				s.send(func() { s.applyResolved(addrs) })
			}
		}
	}()
}

func hasNames(entries []string) bool {
	for _, e := range entries {
		host, _, err := net.SplitHostPort(e)
		if err == nil && net.ParseIP(host) == nil {
			return true
		}
	}
	return false
}

// resolve turns UPSTREAMS entries into addresses: unix sockets and IPs as
// they are, a DNS name into every address it resolves to. A name that does
// not resolve now keeps no address until it does.
func resolve(entries []string, log interface{ Warn(string, ...any) }) []string {
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e, "unix:") {
			out = append(out, e)
			continue
		}
		host, port, _ := net.SplitHostPort(e)
		if net.ParseIP(host) != nil {
			out = append(out, e)
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		ips, err := net.DefaultResolver.LookupHost(ctx, host)
		cancel()
		if err != nil {
			log.Warn("resolving upstream failed", "upstream", e, "error", err)
			continue
		}
		for _, ip := range ips {
			out = append(out, net.JoinHostPort(ip, port))
		}
	}
	sort.Strings(out)
	return out
}

// applyResolved adds upstreams for new addresses and drains those whose
// address is gone. Only the loop calls it.
func (s *Supervisor) applyResolved(addrs []string) {
	if s.stopping {
		return
	}
	want := map[string]bool{}
	for _, a := range addrs {
		want[a] = true
		if s.remotes[a] == nil {
			s.addRemote(a)
		}
	}
	for a, r := range s.remotes {
		if !want[a] {
			s.log.Info("upstream address gone, draining it", "upstream", a)
			delete(s.remotes, a)
			s.drainRemote(r)
		}
	}
	s.publish()
}

func (s *Supervisor) addRemote(addr string) {
	s.remoteSeq++
	u := pool.NewUpstream(remoteIDBase+s.remoteSeq, pool.Remote, addr)
	ctx, cancel := context.WithCancel(context.Background())
	s.remotes[addr] = &remote{up: u, cancel: cancel}
	go s.checker.Watch(ctx, u)
	s.log.Info("remote upstream added", "upstream", addr, "id", u.ID)
}

// drainRemote stops routing to r and, once its requests are done (up to
// DrainTimeout), marks it Stopped and ends its checker; the proxy closes
// its pooled connections when it sees it gone.
func (s *Supervisor) drainRemote(r *remote) {
	r.up.SetState(pool.Draining)
	deadline := time.Now().Add(s.cfg.DrainTimeout)
	go func() {
		for r.up.Inflight() > 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		r.up.SetState(pool.Stopped)
		r.cancel()
	}()
}

// stopRemotes ends every remote upstream at shutdown.
func (s *Supervisor) stopRemotes() {
	for a, r := range s.remotes {
		r.up.SetState(pool.Stopped)
		r.cancel()
		delete(s.remotes, a)
	}
}

// remoteList returns the remote upstreams sorted by id.
func (s *Supervisor) remoteList() []*pool.Upstream {
	ups := make([]*pool.Upstream, 0, len(s.remotes))
	for _, r := range s.remotes {
		ups = append(ups, r.up)
	}
	sort.Slice(ups, func(i, j int) bool { return ups[i].ID < ups[j].ID })
	return ups
}
