package pool

import (
	"testing"

	"github.com/hashicorp/go-hclog"
)

// Issue 11: weights 1 and 3 split 4,000 requests 25% / 75% within 2
// points, under both strategies; smooth round robin interleaves them.
func TestWeightsSplit(t *testing.T) {
	for _, name := range Strategies {
		sel, _ := NewSelector(name)
		p := New(sel, OutlierOptions{}, hclog.NewNullLogger())
		a, b := NewUpstream(1001, Remote, "10.0.0.1:80"), NewUpstream(1002, Remote, "10.0.0.2:80")
		a.Weight, b.Weight = 1, 3
		a.SetState(Healthy)
		b.SetState(Healthy)
		p.Publish([]*Upstream{a, b})
		got := map[*Upstream]int{}
		var seq []int
		for range 4000 {
			u := p.Pick(Tried{})
			got[u]++
			if len(seq) < 8 {
				seq = append(seq, u.ID-1000)
			}
			u.Release(200)
		}
		if share := float64(got[a]) / 4000; share < 0.23 || share > 0.27 {
			t.Errorf("%s: weight 1 of 4 took %.1f%%, want 25%% within 2 points", name, 100*share)
		}
		if name == "round_robin" {
			for i := 1; i < len(seq); i++ {
				if seq[i] == 1 && seq[i-1] == 1 {
					t.Errorf("round_robin: order %v is not smooth", seq)
				}
			}
		}
		if n := testing.AllocsPerRun(1000, func() { p.Pick(Tried{}).Release(200) }); n != 0 {
			t.Errorf("%s: %v allocations per weighted pick", name, n)
		}
	}
}

// With weight 3, an upstream gets three times the in-flight requests of a
// weight 1 one before least_conn prefers the other.
func TestLeastConnDividesByWeight(t *testing.T) {
	p := New(&LeastConn{}, OutlierOptions{}, hclog.NewNullLogger())
	a, b := NewUpstream(1, Remote, "a:1"), NewUpstream(2, Remote, "b:1")
	a.Weight, b.Weight = 1, 3
	a.SetState(Healthy)
	b.SetState(Healthy)
	p.Publish([]*Upstream{a, b})
	for range 40 {
		p.Pick(Tried{}) // held: in flight
	}
	if a.Inflight() != 10 || b.Inflight() != 30 {
		t.Fatalf("in flight %d and %d, want 10 and 30", a.Inflight(), b.Inflight())
	}
}
