package supervisor

import (
	"context"
	"slices"
	"sync/atomic"

	"github.com/procbal/procbal/balancer/pool"
)

// remoteIDBase numbers remote upstreams in reports (1001, 1002, ...), apart
// from local worker ids.
const remoteIDBase = 1000

// The sources of remote upstream entries, as GET /admin/upstreams names
// them.
const (
	SourceEnv  = "UPSTREAMS"
	SourceFile = "UPSTREAMS_FILE"
	SourceAPI  = "api"
)

// remote is one address of a remote upstream.
type remote struct {
	up     *pool.Upstream
	entry  *entry
	cancel context.CancelFunc // stops its health checker
	gone   bool               // its address or entry is gone: it drains, then goes
}

// entry is one entry of the remote set: an address, or a DNS name whose
// addresses each have a remote.
type entry struct {
	Entry
	source string
	cancel context.CancelFunc // stops its DNS watcher; nil for an address
}

// resolution is a DNS watcher's news for the loop: the addresses its
// entry's name has now.
type resolution struct {
	ent   *entry
	addrs []string
}

// remoteState is the loop's remote set, beyond the remotes themselves
// (Supervisor.remotes, which publish reads).
type remoteState struct {
	entries []*entry // in the order added
	ops     chan upstreamOp
	dns     *dnsResolver
	view    atomic.Pointer[UpstreamsView]
}

func (s *Supervisor) initRemotes() {
	s.rs.ops = make(chan upstreamOp)
	s.rs.dns = &dnsResolver{servers: s.cfg.DNSServers, resolvConf: resolvConfPath, hosts: hostsPath}
	s.storeUpstreams()
}

// startRemotes adds the remote set at start: UPSTREAMS_FILE's when that
// file exists, else UPSTREAMS (which then seeds the file). An address joins
// at once, as a Starting upstream; a DNS name once its watcher has
// resolved it.
func (s *Supervisor) startRemotes() {
	entries, source := s.initialEntries()
	for _, e := range entries {
		s.addEntry(e, source, nil)
	}
	s.storeUpstreams()
}

func (s *Supervisor) initialEntries() ([]Entry, string) {
	env, err := ParseEntries(s.cfg.Upstreams)
	if err != nil {
		s.log.Error("bad UPSTREAMS, ignored", "error", err) // the balancer's settings check stops it first
		env = nil
	}
	path := s.cfg.UpstreamsFile
	if path == "" {
		return env, SourceEnv
	}
	file, exists, err := ReadUpstreamsFile(path)
	switch {
	case err != nil: // the balancer's settings check stops it first; never overwrite what could not be read
		s.log.Error("reading UPSTREAMS_FILE failed, starting from UPSTREAMS", "file", path, "error", err)
		return env, SourceEnv
	case exists:
		if len(env) > 0 && !sameEntries(env, file) {
			s.log.Warn("UPSTREAMS_FILE holds the remote set, UPSTREAMS is ignored (remove the file to start from UPSTREAMS again)",
				"file", path, "file_upstreams", len(file), "upstreams", len(env))
		}
		return file, SourceFile
	}
	if err := WriteUpstreamsFile(path, env); err != nil {
		s.log.Error("writing UPSTREAMS_FILE failed", "file", path, "error", err)
	}
	return env, SourceEnv
}

func sameEntries(a, b []Entry) bool {
	return slices.EqualFunc(a, b, func(x, y Entry) bool { return x.Address == y.Address && x.Weight == y.Weight })
}

// addEntry adds e to the set: its remote now for an address; for a name,
// one per address of seeded (a lookup already done) and a watcher that
// resolves it again.
func (s *Supervisor) addEntry(e Entry, source string, seeded *lookup) *entry {
	ent := &entry{Entry: e, source: source}
	s.rs.entries = append(s.rs.entries, ent)
	if !e.IsName() {
		s.addRemote(e.Address, ent)
		return ent
	}
	if seeded != nil {
		n := &nameState{port: e.Port}
		n.seed(*seeded)
		for _, a := range n.addrs() {
			s.addRemote(a, ent)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	ent.cancel = cancel
	go s.watchName(ctx, ent, seeded)
	return ent
}

// removeEntry takes ent out of the set: its watcher stops and every one of
// its remotes drains, through the same drain as a local worker's.
func (s *Supervisor) removeEntry(ent *entry) []int {
	if ent.cancel != nil {
		ent.cancel()
	}
	s.rs.entries = slices.DeleteFunc(s.rs.entries, func(e *entry) bool { return e == ent })
	var ids []int
	for _, r := range s.remotes {
		if r.entry == ent && !r.gone {
			ids = append(ids, r.up.ID)
			s.log.Info("remote upstream removed, draining it", "upstream", r.up.Address, "id", r.up.ID)
			r.gone = true
			s.drain(r.up)
		}
	}
	s.dirty = true
	return ids
}

// applyResolved adds upstreams for the new addresses of a name and drains
// those whose address is gone from its answer. It ignores the news of an
// entry removed meanwhile.
func (s *Supervisor) applyResolved(res resolution) {
	if s.stopping || !slices.Contains(s.rs.entries, res.ent) {
		return
	}
	want := map[string]bool{}
	for _, a := range res.addrs {
		want[a] = true
	}
	for _, r := range s.remotes {
		if r.entry != res.ent || r.gone {
			continue
		}
		if !want[r.up.Address] {
			s.log.Info("upstream address gone, draining it", "upstream", r.up.Address, "id", r.up.ID, "name", res.ent.Address)
			r.gone = true
			s.drain(r.up)
			continue
		}
		delete(want, r.up.Address) // has its upstream
	}
	for _, a := range res.addrs {
		if want[a] {
			s.addRemote(a, res.ent)
		}
	}
	s.storeUpstreams()
}

func (s *Supervisor) addRemote(addr string, ent *entry) *remote {
	s.remoteSeq++
	u := pool.NewUpstream(remoteIDBase+s.remoteSeq, pool.Remote, addr)
	u.Weight = ent.Weight // before publish: the selectors read it
	ctx, cancel := context.WithCancel(context.Background())
	r := &remote{up: u, entry: ent, cancel: cancel}
	s.remotes = append(s.remotes, r)
	go s.checker.Watch(ctx, u)
	args := []any{"upstream", addr, "id", u.ID, "weight", u.Weight}
	if ent.IsName() {
		args = append(args, "name", ent.Address)
	}
	s.log.Info("remote upstream added", args...)
	s.dirty = true
	return r
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
			s.storeUpstreams()
			return
		}
	}
}

// stopRemotes ends every remote upstream and DNS watcher at shutdown.
func (s *Supervisor) stopRemotes() {
	for _, e := range s.rs.entries {
		if e.cancel != nil {
			e.cancel()
		}
	}
	for _, r := range s.remotes {
		r.up.SetState(pool.Stopped)
		r.cancel()
	}
	s.remotes = nil
	s.storeUpstreams()
}
