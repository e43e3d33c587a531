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
	cancel context.CancelFunc // stops its health checker
	gone   bool               // its address is gone: it drains, then goes
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
	go s.resolveEvery(s.cfg.DNSRefresh)
}

// resolveEvery sends the loop the addresses UPSTREAMS resolves to, every d,
// until the loop returns.
func (s *Supervisor) resolveEvery(d time.Duration) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
		}
		select {
		case s.resolved <- resolve(s.cfg.Upstreams, s.log):
		case <-s.done:
			return
		}
	}
}

// hasNames reports whether an entry is a DNS name, which resolve must look
// up again ("unix:/path" splits like host:port, with host "unix").
func hasNames(entries []string) bool {
	for _, e := range entries {
		if strings.HasPrefix(e, "unix:") {
			continue
		}
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
// address is gone, through the same drain as a local worker's.
func (s *Supervisor) applyResolved(addrs []string) {
	if s.stopping {
		return
	}
	want := map[string]bool{}
	for _, a := range addrs {
		want[a] = true
	}
	for _, r := range s.remotes {
		if !r.gone && !want[r.up.Address] {
			s.log.Info("upstream address gone, draining it", "upstream", r.up.Address, "id", r.up.ID)
			r.gone = true
			s.drain(r.up)
		}
		if !r.gone {
			delete(want, r.up.Address) // has its upstream
		}
	}
	for _, a := range addrs {
		if want[a] {
			s.addRemote(a)
		}
	}
}

func (s *Supervisor) addRemote(addr string) {
	s.remoteSeq++
	u := pool.NewUpstream(remoteIDBase+s.remoteSeq, pool.Remote, addr)
	ctx, cancel := context.WithCancel(context.Background())
	s.remotes = append(s.remotes, &remote{up: u, cancel: cancel})
	go s.checker.Watch(ctx, u)
	s.log.Info("remote upstream added", "upstream", addr, "id", u.ID)
	s.dirty = true
}

// dropRemote forgets a remote upstream that has drained: it is Stopped,
// its checker ends, and the proxy closes its pooled connections once it
// is no longer published.
func (s *Supervisor) dropRemote(u *pool.Upstream) {
	for i, r := range s.remotes {
		if r.up == u {
			u.SetState(pool.Stopped)
			r.cancel()
			s.remotes = append(s.remotes[:i], s.remotes[i+1:]...)
			s.dirty = true
			return
		}
	}
}

// stopRemotes ends every remote upstream at shutdown.
func (s *Supervisor) stopRemotes() {
	for _, r := range s.remotes {
		r.up.SetState(pool.Stopped)
		r.cancel()
	}
	s.remotes = nil
}
