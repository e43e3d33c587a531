package supervisor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/procbal/procbal/balancer/pool"
)

// The runtime upstream API's errors (POST and DELETE /admin/upstreams).
var (
	// ErrUpstreamExists: the address is in the remote set already.
	ErrUpstreamExists = errors.New("already a remote upstream")
	// ErrNoSuchUpstream: no remote upstream has the id or address.
	ErrNoSuchUpstream = errors.New("no such remote upstream")
	// ErrLocalWorker: the id is a local worker's, which /admin/scale
	// removes, not DELETE /admin/upstreams.
	ErrLocalWorker = errors.New("a local worker, not a remote upstream (local workers are removed with /admin/scale)")
)

// BadUpstreamError is an address or weight the API refuses.
type BadUpstreamError struct{ Err error }

func (e *BadUpstreamError) Error() string { return e.Err.Error() }
func (e *BadUpstreamError) Unwrap() error { return e.Err }

// PersistError is a change refused because UPSTREAMS_FILE could not be
// written; the set is unchanged.
type PersistError struct{ Err error }

func (e *PersistError) Error() string { return "writing UPSTREAMS_FILE: " + e.Err.Error() }
func (e *PersistError) Unwrap() error { return e.Err }

// UpstreamView is one remote upstream (one address) as reports show it.
type UpstreamView struct {
	// Upstream gives the id, address, weight and live state.
	Upstream *pool.Upstream
	// Entry is the address of the entry it comes from: itself, or the DNS
	// name that resolved to it.
	Entry string
	// Source is where the entry came from: SourceEnv, SourceFile or
	// SourceAPI.
	Source string
}

// EntryView is one entry of the remote set.
type EntryView struct {
	Address string
	Weight  int
	Source  string
	// IDs are its upstreams now (none for a name that has not resolved).
	IDs []int
}

// UpstreamsView is the remote set: every remote upstream (draining ones
// too) and every entry.
type UpstreamsView struct {
	Upstreams []UpstreamView
	Entries   []EntryView
}

// UpstreamChange is what an accepted POST or DELETE did.
type UpstreamChange struct {
	Entry EntryView
	// Added are the upstreams an added entry has now (a name's: one per
	// address it resolved to); Removed the ids of those a removal drains.
	Added   []UpstreamView
	Removed []int
}

// upstreamOp is a change of the remote set for the loop: an entry to add
// (with a name's addresses, looked up by the caller), or one to remove by
// the id of one of its upstreams or by its address.
type upstreamOp struct {
	add        *Entry
	seeded     *lookup
	removeID   int
	removeAddr string
	result     *UpstreamChange
	reply      chan error // room for the answer
}

// Upstreams returns the remote set as last stored. Safe for concurrent use.
func (s *Supervisor) Upstreams() UpstreamsView { return *s.rs.view.Load() }

// AddUpstream adds a remote upstream at address ("host:port", "[v6]:port",
// "name:port" or "unix:/path") with weight (1 to pool.MaxWeight). Like a
// new worker it is Starting until its first healthy answer. A DNS name
// must resolve now; it is then resolved again as UPSTREAMS names are.
func (s *Supervisor) AddUpstream(ctx context.Context, address string, weight int) (UpstreamChange, error) {
	if weight < 1 || weight > pool.MaxWeight {
		return UpstreamChange{}, &BadUpstreamError{fmt.Errorf("weight must be in [1, %d], got %d", pool.MaxWeight, weight)}
	}
	if strings.ContainsRune(address, '=') {
		return UpstreamChange{}, &BadUpstreamError{fmt.Errorf("%q: an address has no = (the weight is its own field)", address)}
	}
	e, err := parseAddress(strings.TrimSpace(address))
	if err != nil {
		return UpstreamChange{}, &BadUpstreamError{fmt.Errorf("%q: %w", address, err)}
	}
	e.Weight = weight
	op := upstreamOp{add: &e}
	if e.IsName() {
		res := s.rs.dns.lookup(ctx, e.Host)
		if len(res.addrs()) == 0 {
			why := errors.Join(res.v4.err, res.v6.err)
			if why == nil {
				why = errors.New("no A or AAAA record")
			}
			return UpstreamChange{}, &BadUpstreamError{fmt.Errorf("%q does not resolve: %w", e.Host, why)}
		}
		op.seeded = &res
	}
	return s.changeUpstreams(ctx, op)
}

// RemoveUpstream removes the entry of remote upstream id: that upstream,
// or every upstream of the DNS name it came from. They leave rotation at
// once and drain (up to DrainTimeout) in the background.
func (s *Supervisor) RemoveUpstream(ctx context.Context, id int) (UpstreamChange, error) {
	return s.changeUpstreams(ctx, upstreamOp{removeID: id})
}

// RemoveUpstreamAddress removes the entry with address, as RemoveUpstream
// does; it also reaches a name that never resolved, which has no id.
func (s *Supervisor) RemoveUpstreamAddress(ctx context.Context, address string) (UpstreamChange, error) {
	e, err := parseAddress(strings.TrimSpace(address))
	if err != nil {
		return UpstreamChange{}, &BadUpstreamError{fmt.Errorf("%q: %w", address, err)}
	}
	return s.changeUpstreams(ctx, upstreamOp{removeAddr: e.Address})
}

// changeUpstreams hands op to the loop and waits for its answer, which
// comes once the changed set is published.
func (s *Supervisor) changeUpstreams(ctx context.Context, op upstreamOp) (UpstreamChange, error) {
	op.result, op.reply = &UpstreamChange{}, make(chan error, 1)
	select {
	case s.rs.ops <- op:
	case <-ctx.Done():
		return UpstreamChange{}, ctx.Err()
	case <-s.done:
		return UpstreamChange{}, ErrStopping
	}
	select {
	case err := <-op.reply:
		return *op.result, err
	case <-s.done:
		return UpstreamChange{}, ErrStopping
	}
}

// upstreamOp carries out a change of the remote set in the loop. The
// answer goes out at the end of the manage step, once published.
func (s *Supervisor) upstreamOp(op upstreamOp) {
	err := s.applyUpstreamOp(op)
	s.storeUpstreams()
	s.answers = append(s.answers, answer{op.reply, err})
}

func (s *Supervisor) applyUpstreamOp(op upstreamOp) error {
	if s.stopping {
		return ErrStopping
	}
	if op.add != nil {
		return s.addByAPI(op)
	}
	ent, err := s.findEntry(op)
	if err != nil {
		return err
	}
	if err := s.persist(slices.DeleteFunc(s.entryList(), func(e Entry) bool { return e.Address == ent.Address })); err != nil {
		return err
	}
	view := entryView(ent, s.remotes)
	removed := s.removeEntry(ent)
	s.log.Info("remote upstream entry removed", "entry", ent.Address, "upstreams", len(removed))
	*op.result = UpstreamChange{Entry: view, Removed: removed}
	return nil
}

func (s *Supervisor) addByAPI(op upstreamOp) error {
	for _, e := range s.rs.entries {
		if e.Address == op.add.Address {
			return fmt.Errorf("%s: %w (id %v)", e.Address, ErrUpstreamExists, entryView(e, s.remotes).IDs)
		}
	}
	if err := s.persist(append(s.entryList(), *op.add)); err != nil {
		return err
	}
	ent := s.addEntry(*op.add, SourceAPI, op.seeded)
	s.log.Info("remote upstream entry added", "entry", ent.Address, "weight", ent.Weight)
	res := UpstreamChange{Entry: entryView(ent, s.remotes)}
	for _, r := range s.remotes {
		if r.entry == ent {
			res.Added = append(res.Added, UpstreamView{Upstream: r.up, Entry: ent.Address, Source: ent.source})
		}
	}
	*op.result = res
	return nil
}

// findEntry returns the entry a removal names, by an upstream's id or by
// its address.
func (s *Supervisor) findEntry(op upstreamOp) (*entry, error) {
	if op.removeAddr != "" {
		for _, e := range s.rs.entries {
			if e.Address == op.removeAddr {
				return e, nil
			}
		}
		return nil, fmt.Errorf("%s: %w", op.removeAddr, ErrNoSuchUpstream)
	}
	for _, r := range s.remotes {
		if r.up.ID == op.removeID {
			if r.gone || !slices.Contains(s.rs.entries, r.entry) {
				return nil, fmt.Errorf("id %d: %w (it is draining, already removed)", op.removeID, ErrNoSuchUpstream)
			}
			return r.entry, nil
		}
	}
	if _, ok := s.slots[op.removeID]; ok {
		return nil, fmt.Errorf("id %d: %w", op.removeID, ErrLocalWorker)
	}
	return nil, fmt.Errorf("id %d: %w", op.removeID, ErrNoSuchUpstream)
}

// persist writes entries to UPSTREAMS_FILE, when set, before the change is
// made: a failed write leaves the set as it was.
func (s *Supervisor) persist(entries []Entry) error {
	if s.cfg.UpstreamsFile == "" {
		return nil
	}
	if err := WriteUpstreamsFile(s.cfg.UpstreamsFile, entries); err != nil {
		s.log.Error("writing UPSTREAMS_FILE failed, change refused", "file", s.cfg.UpstreamsFile, "error", err)
		return &PersistError{err}
	}
	return nil
}

// entryList is the remote set's entries, in order.
func (s *Supervisor) entryList() []Entry {
	out := make([]Entry, 0, len(s.rs.entries))
	for _, e := range s.rs.entries {
		out = append(out, e.Entry)
	}
	return out
}

func entryView(ent *entry, remotes []*remote) EntryView {
	v := EntryView{Address: ent.Address, Weight: ent.Weight, Source: ent.source, IDs: []int{}}
	for _, r := range remotes {
		if r.entry == ent && !r.gone {
			v.IDs = append(v.IDs, r.up.ID)
		}
	}
	return v
}

// storeUpstreams stores the view Upstreams returns. Only the loop calls
// it, after each change of the remote set.
func (s *Supervisor) storeUpstreams() {
	v := UpstreamsView{Upstreams: make([]UpstreamView, 0, len(s.remotes)), Entries: make([]EntryView, 0, len(s.rs.entries))}
	for _, r := range s.remotes {
		v.Upstreams = append(v.Upstreams, UpstreamView{Upstream: r.up, Entry: r.entry.Address, Source: r.entry.source})
	}
	for _, e := range s.rs.entries {
		v.Entries = append(v.Entries, entryView(e, s.remotes))
	}
	s.rs.view.Store(&v)
}
