package pool

import (
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// testUpstreams returns one upstream per state, with IDs from 1, pointing
// nowhere: selection and state tests never dial.
func testUpstreams(states ...State) []*Upstream {
	ups := make([]*Upstream, len(states))
	for i, s := range states {
		ups[i] = NewUpstream(i+1, Local, "unix:/nonexistent")
		ups[i].SetState(s)
	}
	return ups
}

// testPool publishes upstreams in the given states in a pool that selects
// with sel.
func testPool(sel Selector, o OutlierOptions, states ...State) (*Pool, []*Upstream) {
	p := New(sel, o, hclog.NewNullLogger())
	ups := testUpstreams(states...)
	p.Publish(ups)
	return p, ups
}

// ids runs n selections and returns the chosen IDs, 0 for nil.
func ids(sel Selector, ups []*Upstream, tried Tried, n int) []int {
	out := make([]int, n)
	for i := range out {
		if u := sel.Select(ups, tried); u != nil {
			out[i] = u.ID
		}
	}
	return out
}

// cycle repeats pattern until it is n long.
func cycle(n int, pattern ...int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = pattern[i%len(pattern)]
	}
	return out
}

func triedOf(ups []*Upstream, idx ...int) Tried {
	var t Tried
	for _, i := range idx {
		t.Add(ups[i])
	}
	return t
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestRoundRobinRotation(t *testing.T) {
	H := Healthy
	tests := []struct {
		name   string
		states []State
		tried  []int // indexes into the upstreams
		want   []int // IDs of 30 consecutive picks
	}{
		{"all healthy", []State{H, H, H}, nil, cycle(30, 1, 2, 3)},
		{"single", []State{H}, nil, cycle(30, 1)},
		{"starting skipped", []State{H, Starting, H}, nil, cycle(30, 1, 3)},
		{"draining skipped", []State{H, Draining, H}, nil, cycle(30, 1, 3)},
		{"unhealthy skipped", []State{H, Unhealthy, H}, nil, cycle(30, 1, 3)},
		{"ejected skipped", []State{H, Ejected, H}, nil, cycle(30, 1, 3)},
		{"stopped skipped", []State{H, Stopped, H}, nil, cycle(30, 1, 3)},
		{"first unavailable", []State{Unhealthy, H, H}, nil, cycle(30, 2, 3)},
		{"last unavailable", []State{H, H, Draining}, nil, cycle(30, 1, 2)},
		{"two in a row unavailable", []State{H, Starting, Ejected, H, H}, nil, cycle(30, 1, 4, 5)},
		{"one left", []State{Draining, H, Unhealthy}, nil, cycle(30, 2)},
		{"tried skipped", []State{H, H, H}, []int{0}, cycle(30, 2, 3)},
		{"tried and unavailable skipped", []State{H, H, Starting, H}, []int{1}, cycle(30, 1, 4)},
		{"all tried", []State{H, H}, []int{0, 1}, cycle(30, 0)},
		{"none healthy", []State{Starting, Unhealthy, Ejected, Draining, Stopped}, nil, cycle(30, 0)},
		{"empty", nil, nil, cycle(30, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ups := testUpstreams(tt.states...)
			got := ids(&RoundRobin{}, ups, triedOf(ups, tt.tried...), len(tt.want))
			if !equalInts(got, tt.want) {
				t.Errorf("picks = %v\nwant    %v", got, tt.want)
			}
		})
	}
}

// A state change in the middle of the rotation must not make one upstream
// take two turns in a row or lose its turn for good.
func TestRoundRobinStateChange(t *testing.T) {
	ups := testUpstreams(Healthy, Healthy, Healthy)
	rr := &RoundRobin{}
	if got := ids(rr, ups, Tried{}, 3); !equalInts(got, []int{1, 2, 3}) {
		t.Fatalf("picks = %v, want [1 2 3]", got)
	}
	ups[1].SetState(Unhealthy)
	if got := ids(rr, ups, Tried{}, 6); !equalInts(got, cycle(6, 1, 3)) {
		t.Fatalf("with 2 out: picks = %v, want %v", got, cycle(6, 1, 3))
	}
	ups[1].SetState(Healthy)
	got := ids(rr, ups, Tried{}, 30)
	count := map[int]int{}
	for i, id := range got {
		count[id]++
		if i > 0 && got[i-1] == id {
			t.Fatalf("upstream %d picked twice in a row: %v", id, got)
		}
	}
	if count[1] != 10 || count[2] != 10 || count[3] != 10 {
		t.Errorf("after 2 is back: counts = %v, want 10 each (%v)", count, got)
	}
}

// The counter is shared by all requests: concurrent picks over healthy
// upstreams still split exactly evenly.
func TestRoundRobinConcurrentExact(t *testing.T) {
	ups := testUpstreams(Healthy, Healthy, Healthy)
	rr := &RoundRobin{}
	const workers, each = 8, 300
	var mu sync.Mutex
	count := map[int]int{}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			local := map[int]int{}
			for range each {
				local[rr.Select(ups, Tried{}).ID]++
			}
			mu.Lock()
			for id, n := range local {
				count[id] += n
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	for id := 1; id <= 3; id++ {
		if count[id] != workers*each/3 {
			t.Errorf("upstream %d: %d picks, want %d (%v)", id, count[id], workers*each/3, count)
		}
	}
}

func TestLeastConn(t *testing.T) {
	H := Healthy
	tests := []struct {
		name     string
		states   []State
		inflight []int64
		tried    []int
		want     int // ID, 0 for nil
	}{
		{"lowest", []State{H, H, H}, []int64{3, 1, 2}, nil, 2},
		{"lowest last", []State{H, H, H}, []int64{3, 2, 0}, nil, 3},
		{"lowest unavailable", []State{H, Starting, H}, []int64{5, 0, 1}, nil, 3},
		{"lowest draining", []State{H, Draining, H}, []int64{5, 0, 4}, nil, 3},
		{"lowest unhealthy", []State{Unhealthy, H, H}, []int64{0, 7, 6}, nil, 3},
		{"lowest ejected", []State{H, H, Ejected}, []int64{2, 3, 0}, nil, 1},
		{"lowest tried", []State{H, H, H}, []int64{3, 1, 2}, []int{1}, 3},
		{"all tried", []State{H, H}, []int64{0, 0}, []int{0, 1}, 0},
		{"none available", []State{Starting, Draining, Ejected}, []int64{0, 0, 0}, nil, 0},
		{"empty", nil, nil, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ups := testUpstreams(tt.states...)
			for i, n := range tt.inflight {
				ups[i].inflight.Store(n)
			}
			lc := &LeastConn{}
			// The start rotates; the answer must not depend on it.
			for i := range 2 * max(len(ups), 1) {
				got := 0
				if u := lc.Select(ups, triedOf(ups, tt.tried...)); u != nil {
					got = u.ID
				}
				if got != tt.want {
					t.Fatalf("pick %d = %d, want %d", i, got, tt.want)
				}
			}
		})
	}
}

type tieCase struct {
	name     string
	states   []State
	inflight []int64
	share    map[int]int // ID -> picks out of 60
}

func TestLeastConnTiesRotate(t *testing.T) {
	testLeastConnTies(t, []tieCase{
		{"all idle", []State{Healthy, Healthy, Healthy}, []int64{0, 0, 0}, map[int]int{1: 20, 2: 20, 3: 20}},
		{"four idle", []State{Healthy, Healthy, Healthy, Healthy}, []int64{0, 0, 0, 0}, map[int]int{1: 15, 2: 15, 3: 15, 4: 15}},
	})
}

// testLeastConnTies checks how 60 picks split over upstreams whose load
// does not change.
func testLeastConnTies(t *testing.T, tests []tieCase) {
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ups := testUpstreams(tt.states...)
			for i, n := range tt.inflight {
				ups[i].inflight.Store(n)
			}
			got := ids(&LeastConn{}, ups, Tried{}, 60)
			count := map[int]int{}
			for _, id := range got {
				count[id]++
			}
			if len(count) != len(tt.share) {
				t.Fatalf("picks = %v, want shares %v", got, tt.share)
			}
			for id, n := range tt.share {
				if count[id] != n {
					t.Errorf("upstream %d: %d picks, want %d (%v)", id, count[id], n, got)
				}
			}
		})
	}
}

// Pick follows the load: a request in flight moves the next one elsewhere.
func TestLeastConnFollowsPick(t *testing.T) {
	p, ups := testPool(&LeastConn{}, OutlierOptions{}, Healthy, Healthy, Healthy)
	var got []*Upstream
	for range 3 {
		got = append(got, p.Pick(Tried{}))
	}
	seen := map[int]bool{}
	for _, u := range got {
		seen[u.ID] = true
	}
	if len(seen) != 3 {
		t.Fatalf("3 picks while all stay in flight went to %v, want all three", seen)
	}
	got[1].Release(200)
	if u := p.Pick(Tried{}); u != got[1] {
		t.Errorf("after releasing %d, pick = %d, want %d", got[1].ID, u.ID, got[1].ID)
	}
	for _, u := range ups {
		if u.Inflight() != 1 {
			t.Errorf("upstream %d inflight = %d, want 1", u.ID, u.Inflight())
		}
	}
}

func TestNewSelector(t *testing.T) {
	for _, name := range Strategies {
		if s, err := NewSelector(name); err != nil || s == nil {
			t.Errorf("NewSelector(%q) = %v, %v", name, s, err)
		}
	}
	if _, err := NewSelector("random"); err == nil {
		t.Error("NewSelector(random): no error")
	}
}

func TestPickCounts(t *testing.T) {
	p, ups := testPool(&RoundRobin{}, OutlierOptions{}, Healthy, Healthy)
	a := p.Pick(Tried{})
	b := p.Pick(Tried{})
	if a != ups[0] || b != ups[1] {
		t.Fatalf("picks = %d, %d; want 1, 2", a.ID, b.ID)
	}
	a2 := p.Pick(Tried{})
	if a2 != ups[0] || a.Inflight() != 2 || b.Inflight() != 1 {
		t.Fatalf("inflight = %d, %d; want 2, 1", a.Inflight(), b.Inflight())
	}
	a.Release(200)
	a.Release(503)
	b.Release(0) // failed before an answer
	for _, c := range []struct {
		u                *Upstream
		inflight         int64
		requests, c2, c5 uint64
		c1, c3, c4       uint64
	}{
		{a, 0, 2, 1, 1, 0, 0, 0},
		{b, 0, 1, 0, 0, 0, 0, 0},
	} {
		u := c.u
		if u.Inflight() != c.inflight || u.Requests() != c.requests ||
			u.StatusClass(2) != c.c2 || u.StatusClass(5) != c.c5 ||
			u.StatusClass(1) != c.c1 || u.StatusClass(3) != c.c3 || u.StatusClass(4) != c.c4 {
			t.Errorf("upstream %d: inflight %d requests %d 1xx..5xx %d %d %d %d %d; want %d %d %d %d %d %d %d",
				u.ID, u.Inflight(), u.Requests(), u.StatusClass(1), u.StatusClass(2), u.StatusClass(3),
				u.StatusClass(4), u.StatusClass(5), c.inflight, c.requests, c.c1, c.c2, c.c3, c.c4, c.c5)
		}
	}
	if got := p.Healthy(); got != 2 {
		t.Errorf("Healthy() = %d, want 2", got)
	}
}

func TestAcquireRefusedUnlessHealthy(t *testing.T) {
	for _, s := range []State{Starting, Unhealthy, Ejected, Draining, Stopped} {
		t.Run(s.String(), func(t *testing.T) {
			u := testUpstreams(s)[0]
			if u.Acquire() {
				t.Fatal("Acquire succeeded")
			}
			if u.Inflight() != 0 {
				t.Errorf("inflight = %d after a refused Acquire, want 0", u.Inflight())
			}
		})
	}
}

// drainOnSelect returns its first pick after marking it Draining, as if the
// supervisor began draining it between selection and Acquire.
type drainOnSelect struct {
	RoundRobin
	once sync.Once
}

func (d *drainOnSelect) Select(ups []*Upstream, tried Tried) *Upstream {
	u := d.RoundRobin.Select(ups, tried)
	d.once.Do(func() { u.SetState(Draining) })
	return u
}

func TestPickRefusesUpstreamDrainedAfterSelect(t *testing.T) {
	p, ups := testPool(&drainOnSelect{}, OutlierOptions{}, Healthy, Healthy)
	u := p.Pick(Tried{})
	if u != ups[1] {
		t.Fatalf("Pick = %v, want upstream 2", u)
	}
	if ups[0].State() != Draining || ups[0].Inflight() != 0 {
		t.Errorf("drained upstream: state %v inflight %d, want draining 0", ups[0].State(), ups[0].Inflight())
	}
	if ups[1].Inflight() != 1 {
		t.Errorf("picked upstream inflight = %d, want 1", ups[1].Inflight())
	}
}

func TestPickNone(t *testing.T) {
	tests := []struct {
		name   string
		states []State
		tried  []int
	}{
		{"empty", nil, nil},
		{"draining only", []State{Draining}, nil},
		{"starting and unhealthy", []State{Starting, Unhealthy, Stopped}, nil},
		{"all tried", []State{Healthy, Healthy}, []int{0, 1}},
		{"ejected tried", []State{Ejected, Unhealthy}, []int{0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, ups := testPool(&RoundRobin{}, OutlierOptions{}, tt.states...)
			if u := p.Pick(triedOf(ups, tt.tried...)); u != nil {
				t.Errorf("Pick = upstream %d (%v), want nil", u.ID, u.State())
			}
			for _, u := range ups {
				if u.Inflight() != 0 {
					t.Errorf("upstream %d inflight = %d, want 0", u.ID, u.Inflight())
				}
			}
		})
	}
}

func TestPassiveEjection(t *testing.T) {
	o := OutlierOptions{Consecutive: 3, BaseEjection: time.Second, MaxEjection: 10 * time.Second}
	p, ups := testPool(&RoundRobin{}, o, Healthy, Healthy, Healthy)
	var ejected []int
	p.OnEject = func(u *Upstream) { ejected = append(ejected, u.ID) }
	u := ups[0]

	p.ReportFailure(u)
	p.ReportFailure(u)
	p.ReportSuccess(u) // breaks the run
	p.ReportFailure(u)
	p.ReportFailure(u)
	if u.State() != Healthy || u.Ejections() != 0 {
		t.Fatalf("after an interrupted run: %v, %d ejections; want healthy, 0", u.State(), u.Ejections())
	}
	before := time.Now()
	p.ReportFailure(u)
	if u.State() != Ejected || u.Ejections() != 1 || u.Failures() != 5 {
		t.Fatalf("after 3 in a row: %v, %d ejections, %d failures; want ejected, 1, 5",
			u.State(), u.Ejections(), u.Failures())
	}
	first := u.EjectedUntil().Sub(before)
	if first < 900*time.Millisecond || first > 1100*time.Millisecond {
		t.Errorf("first ejection lasts %v, want ~1s", first)
	}
	if !equalInts(ejected, []int{1}) {
		t.Errorf("OnEject calls = %v, want [1]", ejected)
	}
	for range 5 {
		if got := p.Pick(Tried{}); got == u {
			t.Fatal("Pick chose the ejected upstream while others are healthy")
		}
	}

	// Readmitted (the checker's job), it fails again: ejected for longer.
	u.SetState(Healthy)
	before = time.Now()
	for range 3 {
		p.ReportFailure(u)
	}
	second := u.EjectedUntil().Sub(before)
	if u.State() != Ejected || u.Ejections() != 2 {
		t.Fatalf("second run: %v, %d ejections; want ejected, 2", u.State(), u.Ejections())
	}
	if second < 1900*time.Millisecond || second > 2100*time.Millisecond || second <= first {
		t.Errorf("second ejection lasts %v (first %v), want ~2s", second, first)
	}
}

func TestEjectionCapped(t *testing.T) {
	o := OutlierOptions{Consecutive: 1, BaseEjection: time.Second, MaxEjection: 2500 * time.Millisecond}
	p, ups := testPool(&RoundRobin{}, o, Healthy, Healthy, Healthy)
	u := ups[0]
	var last time.Duration
	for range 4 {
		u.SetState(Healthy)
		before := time.Now()
		p.ReportFailure(u)
		last = u.EjectedUntil().Sub(before)
	}
	if u.Ejections() != 4 || last < 2400*time.Millisecond || last > 2600*time.Millisecond {
		t.Errorf("4th ejection: %d ejections, lasts %v; want 4, capped at 2.5s", u.Ejections(), last)
	}
}

func TestEjectionNeverEmptiesPool(t *testing.T) {
	tests := []struct {
		name     string
		states   []State
		pct      int
		wantEjct int // of all upstreams failing in turn
	}{
		{"two upstreams", []State{Healthy, Healthy}, 0, 1},
		{"one upstream", []State{Healthy}, 0, 0},
		{"four upstreams, 50%", []State{Healthy, Healthy, Healthy, Healthy}, 0, 2},
		{"four upstreams, 100%", []State{Healthy, Healthy, Healthy, Healthy}, 100, 3},
		{"three upstreams, one unhealthy", []State{Healthy, Unhealthy, Healthy}, 0, 1},
		{"five upstreams, 50%", []State{Healthy, Healthy, Healthy, Healthy, Healthy}, 0, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := OutlierOptions{Consecutive: 2, MaxEjectedPercent: tt.pct}
			p, ups := testPool(&RoundRobin{}, o, tt.states...)
			for round := range 3 {
				for _, u := range ups {
					p.ReportFailure(u)
					p.ReportFailure(u)
				}
				ejected, healthy := 0, 0
				for _, u := range ups {
					switch u.State() {
					case Ejected:
						ejected++
					case Healthy:
						healthy++
					}
				}
				if ejected != tt.wantEjct || healthy < 1 {
					t.Fatalf("round %d: %d ejected, %d healthy; want %d ejected and one healthy",
						round, ejected, healthy, tt.wantEjct)
				}
			}
		})
	}
}

// Envoy's panic mode: when nothing healthy is left but some upstreams are
// only passively ejected, the request goes to one of those.
func TestPickFallsBackToEjected(t *testing.T) {
	p, ups := testPool(&RoundRobin{}, OutlierOptions{Consecutive: 1}, Healthy, Healthy, Healthy, Healthy)
	p.ReportFailure(ups[0])
	p.ReportFailure(ups[1])
	if ups[0].State() != Ejected || ups[1].State() != Ejected {
		t.Fatalf("states %v %v, want both ejected", ups[0].State(), ups[1].State())
	}
	// The active checker takes the rest out.
	ups[2].SetState(Unhealthy)
	ups[3].SetState(Draining)

	u := p.Pick(Tried{})
	if u == nil || u.State() != Ejected {
		t.Fatalf("Pick = %v, want an ejected upstream", u)
	}
	if u.Inflight() != 1 {
		t.Errorf("inflight = %d, want 1", u.Inflight())
	}
	var tried Tried
	tried.Add(u)
	v := p.Pick(tried)
	if v == nil || v == u || v.State() != Ejected {
		t.Fatalf("second Pick = %v, want the other ejected upstream", v)
	}
	tried.Add(v)
	if w := p.Pick(tried); w != nil {
		t.Errorf("third Pick = upstream %d, want nil", w.ID)
	}
	u.Release(200)
	v.Release(200)

	// A healthy one back: panic routing ends.
	ups[2].SetState(Healthy)
	for range 4 {
		if w := p.Pick(Tried{}); w != ups[2] {
			t.Fatalf("Pick = %d after recovery, want 3", w.ID)
		}
	}
}

func TestTried(t *testing.T) {
	ups := testUpstreams(Healthy, Healthy, Healthy, Healthy)
	var tr Tried
	for _, u := range ups {
		tr.Add(u)
	}
	if tr.Len() != MaxTries {
		t.Errorf("Len = %d, want %d", tr.Len(), MaxTries)
	}
	for i, u := range ups {
		if want := i < MaxTries; tr.Has(u) != want {
			t.Errorf("Has(%d) = %v, want %v", u.ID, !want, want)
		}
	}
}

func TestStateString(t *testing.T) {
	want := map[State]string{Starting: "starting", Healthy: "healthy", Unhealthy: "unhealthy",
		Ejected: "ejected", Draining: "draining", Stopped: "stopped", State(42): "unknown", State(-1): "unknown"}
	for s, name := range want {
		if s.String() != name {
			t.Errorf("State(%d) = %q, want %q", int(s), s.String(), name)
		}
	}
}
