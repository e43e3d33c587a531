package pool

import (
	"strconv"
	"testing"

	"github.com/hashicorp/go-hclog"
)

func stickyPool(n int) (*Pool, []*Upstream) {
	p := New(&RoundRobin{}, OutlierOptions{}, hclog.NewNullLogger())
	p.SetStickySecret([]byte("s3cret"))
	ups := make([]*Upstream, n)
	for i := range ups {
		ups[i] = NewUpstream(i+1, Local, "unix:/w"+strconv.Itoa(i+1))
		ups[i].SetState(Healthy)
	}
	p.Publish(ups)
	return p, ups
}

func owner(p *Pool, key int) *Upstream {
	u := p.PickHashed(Tried{}, HashKey([]byte("10.0.0."+strconv.Itoa(key))))
	u.Release(200)
	return u
}

// Issue 13: with STICKY=ip, going from 4 to 5 upstreams moves about 1/5 of
// the keys (between 10% and 30% of 10,000), and keys spread evenly.
func TestRingMovesAFractionOfKeys(t *testing.T) {
	p4, ups := stickyPool(4)
	before := map[int]*Upstream{}
	share := map[*Upstream]int{}
	for k := range 10000 {
		before[k] = owner(p4, k)
		share[before[k]]++
	}
	for _, u := range ups {
		if s := share[u]; s < 1500 || s > 3500 {
			t.Errorf("upstream %d owns %d of 10000 keys, want about 2500", u.ID, s)
		}
	}
	// The same four upstreams plus a fifth.
	p5 := New(&RoundRobin{}, OutlierOptions{}, hclog.NewNullLogger())
	fifth := NewUpstream(5, Local, "unix:/w5")
	fifth.SetState(Healthy)
	p5.Publish(append(append([]*Upstream{}, ups...), fifth))
	moved := 0
	for k := range 10000 {
		u := owner(p5, k)
		if u != before[k] {
			moved++
			if u != fifth {
				t.Fatalf("key %d moved between two old upstreams", k)
			}
		}
	}
	if moved < 1000 || moved > 3000 {
		t.Errorf("%d of 10000 keys moved, want between 1000 and 3000", moved)
	}
}

// A key whose upstream is not available goes to the next one on the ring,
// and comes back once it is.
func TestRingSkipsUnavailable(t *testing.T) {
	p, _ := stickyPool(4)
	home := owner(p, 7)
	home.SetState(Unhealthy)
	if other := owner(p, 7); other == home || other == nil {
		t.Fatalf("with its upstream down the key went to %v", other)
	}
	home.SetState(Healthy)
	if back := owner(p, 7); back != home {
		t.Fatalf("the key did not come back: %d, want %d", back.ID, home.ID)
	}
	var tried Tried
	tried.Add(home)
	u := p.PickHashed(tried, HashKey([]byte("10.0.0.7")))
	if u == home {
		t.Fatal("picked an upstream already tried")
	}
	u.Release(0)
}

// A cookie names its upstream; tampered, foreign or unknown ones name none.
func TestStickyCookies(t *testing.T) {
	p, ups := stickyPool(3)
	for _, u := range ups {
		c := p.Cookie(u)
		if got := p.CookieTarget(c); got != u {
			t.Fatalf("cookie %q names %v, want %d", c, got, u.ID)
		}
		bad := append([]byte(nil), c...)
		bad[len(bad)-1] ^= 1
		if p.CookieTarget(bad) != nil {
			t.Errorf("tampered cookie %q accepted", bad)
		}
	}
	if p.CookieTarget([]byte("w9.00000000000000000000000000000000")) != nil || p.CookieTarget(nil) != nil {
		t.Error("forged or empty cookie accepted")
	}
	other, _ := stickyPool(3)
	other.SetStickySecret([]byte("another"))
	other.Publish(other.Upstreams()) // a new set: the view is built with the new key
	if other.CookieTarget(p.Cookie(ups[0])) != nil {
		t.Error("a cookie signed under another secret was accepted")
	}
}

// Sticky picks allocate nothing once the set's view is built.
func TestStickyPickAllocs(t *testing.T) {
	p, ups := stickyPool(4)
	c := p.Cookie(ups[2])
	key := HashKey([]byte("10.1.2.3"))
	n := testing.AllocsPerRun(1000, func() {
		if u := p.PickPreferred(Tried{}, p.CookieTarget(c)); u != ups[2] {
			t.Fatal("cookie pick")
		} else {
			u.Release(200)
		}
		p.PickHashed(Tried{}, key).Release(200)
	})
	if n != 0 {
		t.Fatalf("%v allocations per sticky pick", n)
	}
}
