package pool

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"slices"
	"strconv"
	"sync/atomic"
)

// Sticky sessions keep a client on one upstream: socket.io's long-polling
// requests must all reach the process that holds the session, which Node's
// cluster module and PM2 cannot promise. Two ways, both lock-free on the
// request path:
//
//   - By key (STICKY=ip, STICKY=header:NAME): the key's hash is looked up on
//     a consistent-hash ring (Karger's, as Envoy's ring_hash), so adding or
//     removing one of N upstreams moves about 1/N of the keys.
//   - By cookie (STICKY=cookie): the cookie names the upstream and carries an
//     HMAC-SHA256 under the sticky secret, so a client can neither pick nor
//     forge a worker. Each upstream's cookie value is computed once per
//     published set, so checking one is a constant-time comparison.
//
// A missing, tampered or stale cookie, or a target that is not available,
// is a fresh pick, never an error.

// ringPoints is how many points each upstream gets on the ring: with 160,
// the share of keys an upstream owns stays within a few percent of 1/N.
const ringPoints = 160

// stickyView is what sticky selection needs of one published set. It is
// built once per set (the first sticky pick after a Publish) and never
// changed, so loops share it without a lock.
type stickyView struct {
	ups     *[]*Upstream // the set it was built for
	points  []ringPoint  // sorted by hash
	cookies [][]byte     // cookies[i] names (*ups)[i]
}

type ringPoint struct {
	hash uint64
	u    *Upstream
}

// stickyState is a pool's sticky configuration and its current view.
type stickyState struct {
	secret []byte
	view   atomic.Pointer[stickyView]
}

// SetStickySecret sets the key of sticky cookies. Call it before the pool
// is used; without it cookies are signed with an empty key.
func (p *Pool) SetStickySecret(secret []byte) { p.sticky.secret = secret }

// stickyView returns the view of the published set, building it when the
// set changed since.
func (p *Pool) stickyView() *stickyView {
	cur := p.ups.Load()
	if v := p.sticky.view.Load(); v != nil && v.ups == cur {
		return v
	}
	v := buildStickyView(cur, p.sticky.secret)
	p.sticky.view.Store(v)
	return v
}

func buildStickyView(set *[]*Upstream, secret []byte) *stickyView {
	ups := *set
	v := &stickyView{ups: set, points: make([]ringPoint, 0, len(ups)*ringPoints), cookies: make([][]byte, len(ups))}
	for i, u := range ups {
		name := stickyName(u)
		for k := range ringPoints {
			v.points = append(v.points, ringPoint{hash: HashKey([]byte(name + "#" + strconv.Itoa(k))), u: u})
		}
		mac := hmac.New(sha256.New, secret)
		mac.Write([]byte(name))
		v.cookies[i] = []byte(name + "." + hex.EncodeToString(mac.Sum(nil)[:16]))
	}
	slices.SortFunc(v.points, func(a, b ringPoint) int {
		switch {
		case a.hash < b.hash:
			return -1
		case a.hash > b.hash:
			return 1
		}
		return 0
	})
	return v
}

// stickyName is what names an upstream in a cookie and on the ring: its
// slot for a local worker (a replacement keeps it), its address for a
// remote one.
func stickyName(u *Upstream) string {
	if u.Kind == Local {
		return "w" + strconv.Itoa(u.ID)
	}
	return u.Address
}

// HashKey hashes a sticky key (a client address, a header value): FNV-1a,
// then a 64-bit finalizer so that near keys land far apart on the ring.
func HashKey(b []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// PickHashed is Pick for a client with a sticky key hash: the first
// available upstream on the ring from the key's point, not in tried; when
// none is, an ordinary Pick.
func (p *Pool) PickHashed(tried Tried, key uint64) *Upstream {
	v := p.stickyView()
	pts := v.points
	if len(pts) == 0 {
		return p.Pick(tried)
	}
	i, _ := slices.BinarySearchFunc(pts, key, func(pt ringPoint, k uint64) int {
		switch {
		case pt.hash < k:
			return -1
		case pt.hash > k:
			return 1
		}
		return 0
	})
	for n := range len(pts) {
		if u := pts[(i+n)%len(pts)].u; !tried.Has(u) && u.Acquire() {
			return u
		}
	}
	return p.Pick(tried) // none on the ring is available: the usual fallbacks
}

// CookieTarget returns the upstream a sticky cookie value names when its
// signature is right and that upstream is in the published set, else nil.
func (p *Pool) CookieTarget(value []byte) *Upstream {
	v := p.stickyView()
	for i, c := range v.cookies {
		if subtle.ConstantTimeCompare(c, value) == 1 {
			return (*v.ups)[i]
		}
	}
	return nil
}

// PickPreferred is Pick that takes want when it is available and not in
// tried.
func (p *Pool) PickPreferred(tried Tried, want *Upstream) *Upstream {
	if want != nil && !tried.Has(want) && want.Acquire() {
		return want
	}
	return p.Pick(tried)
}

// Cookie returns the sticky cookie value that names u, or nil when u is
// not in the published set. The caller must not change it.
func (p *Pool) Cookie(u *Upstream) []byte {
	v := p.stickyView()
	for i, x := range *v.ups {
		if x == u {
			return v.cookies[i]
		}
	}
	return nil
}
