package admin

import (
	"math"
	"math/bits"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/procbal/procbal/balancer/pool"
)

// Stats keeps what the dashboard shows over time, in the balancer's own
// memory (no database): a latency histogram per upstream, fed by the
// proxy's Observe on every attempt without a lock or an allocation, and a
// ring buffer of samples taken every Interval by one goroutine from the
// upstreams' atomics and those histograms: requests, errors and memory per
// worker over the last Window, and latency percentiles over the last
// minute.
type Stats struct {
	pool     *pool.Pool
	sup      Supervisor
	interval time.Duration
	points   int // ring capacity: Window / Interval
	minute   int // samples in the latency window

	// hists maps each upstream to its histogram. Observe reads it without
	// a lock; a new upstream copies it under mu (once per process).
	hists atomic.Pointer[map[*pool.Upstream]*histogram]
	mu    sync.Mutex

	// Owned by the sampler, read under smu by the handlers.
	smu   sync.RWMutex
	ring  []sample // oldest first once full; at most points
	prev  map[*pool.Upstream]counters
	lat   map[int][]histCounts // per id, the latency of the last minute's samples, oldest first
	total []histCounts         // the same, over every upstream
	stop  chan struct{}
	done  chan struct{}
}

// StatsOptions configures Stats. Zero values take the defaults.
type StatsOptions struct {
	// Interval is the time between samples. If zero, 5s.
	Interval time.Duration
	// Window is how far back the charts go. If zero, 15 minutes.
	Window time.Duration
}

// NewStats returns the dashboard's statistics over p and sup. Feed it as
// the proxy's Observer (Metrics forwards to it) and run Start.
func NewStats(p *pool.Pool, sup Supervisor, o StatsOptions) *Stats {
	if o.Interval <= 0 {
		o.Interval = 5 * time.Second
	}
	if o.Window <= 0 {
		o.Window = 15 * time.Minute
	}
	s := &Stats{
		pool: p, sup: sup, interval: o.Interval,
		points: max(2, int(o.Window/o.Interval)),
		minute: max(1, int(time.Minute/o.Interval)),
		prev:   map[*pool.Upstream]counters{},
		lat:    map[int][]histCounts{},
	}
	empty := map[*pool.Upstream]*histogram{}
	s.hists.Store(&empty)
	return s
}

// Interval returns the time between samples.
func (s *Stats) Interval() time.Duration { return s.interval }

// Start takes a first sample now and then one every Interval until Stop.
func (s *Stats) Start() {
	s.stop, s.done = make(chan struct{}), make(chan struct{})
	s.Sample(time.Now())
	go func() {
		defer close(s.done)
		t := time.NewTicker(s.interval)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case now := <-t.C:
				s.Sample(now)
			}
		}
	}()
}

// Stop ends the sampler that Start began.
func (s *Stats) Stop() {
	if s.stop == nil {
		return
	}
	close(s.stop)
	<-s.done
}

// Observe implements proxy.Observer: it counts the attempt in u's latency
// histogram. Lock-free and allocation-free but for the first attempt on
// each upstream.
func (s *Stats) Observe(u *pool.Upstream, _ int, d time.Duration) {
	h := (*s.hists.Load())[u]
	if h == nil {
		h = s.histFor(u)
	}
	h.counts[bucketOf(d)].Add(1)
}

// histFor adds u's histogram: the map is copied, so readers never lock.
func (s *Stats) histFor(u *pool.Upstream) *histogram {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := *s.hists.Load()
	if h := old[u]; h != nil {
		return h
	}
	m := make(map[*pool.Upstream]*histogram, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	h := &histogram{}
	m[u] = h
	s.hists.Store(&m)
	return h
}

// prune drops the histograms of upstreams no longer in the pool.
func (s *Stats) prune(live map[*pool.Upstream]bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := *s.hists.Load()
	gone := false
	for u := range old {
		if !live[u] {
			gone = true
			break
		}
	}
	if !gone {
		return
	}
	m := make(map[*pool.Upstream]*histogram, len(live))
	for u, h := range old {
		if live[u] {
			m[u] = h
		}
	}
	s.hists.Store(&m)
}

// The latency histogram: log-linear buckets of microseconds, four per
// power of two (at most 19% wide), from 1µs to beyond an hour.
const numBuckets = 4 * 34

type (
	histogram  struct{ counts [numBuckets]atomic.Uint64 }
	histCounts [numBuckets]uint64
)

// bucketOf returns the bucket of d: 0 to 3 for 0 to 3µs, then four per
// power of two.
func bucketOf(d time.Duration) int {
	us := uint64(max(d, 0) / time.Microsecond)
	if us < 4 {
		return int(us)
	}
	n := bits.Len64(us) // >= 3
	i := (n-2)*4 + int(us>>(n-3)&3)
	return min(i, numBuckets-1)
}

// bucketBounds returns bucket i's range in microseconds, [lo, hi).
func bucketBounds(i int) (lo, hi float64) {
	if i < 4 {
		return float64(i), float64(i + 1)
	}
	n := i/4 + 2
	top := uint64(i%4 + 4)
	return float64(top << (n - 3)), float64((top + 1) << (n - 3))
}

func (h *histogram) load() histCounts {
	var c histCounts
	for i := range h.counts {
		c[i] = h.counts[i].Load()
	}
	return c
}

func (c *histCounts) add(o *histCounts) {
	for i := range c {
		c[i] += o[i]
	}
}

// quantile returns the q-th quantile in milliseconds, interpolated within
// its bucket, and false when the histogram is empty.
func (c *histCounts) quantile(q float64) (float64, bool) {
	var n uint64
	for _, v := range c {
		n += v
	}
	if n == 0 {
		return 0, false
	}
	rank := q * float64(n)
	var seen float64
	for i, v := range c {
		if v == 0 {
			continue
		}
		if seen+float64(v) >= rank {
			lo, hi := bucketBounds(i)
			return (lo + (hi-lo)*(rank-seen)/float64(v)) / 1000, true
		}
		seen += float64(v)
	}
	lo, _ := bucketBounds(numBuckets - 1)
	return lo / 1000, true
}

// counters are an upstream's totals at a sample.
type counters struct {
	requests, errors uint64
	lat              histCounts
}

// sample is one point of the ring: per upstream id and for the pool.
type sample struct {
	at    time.Time
	ups   map[int]point
	total point
}

// point is what a sample holds for one id, or for the pool.
type point struct {
	ReqPerSec float64 `json:"req_per_sec"`
	ErrPerSec float64 `json:"errors_per_sec"`
	RSSBytes  uint64  `json:"rss_bytes"`
	HeapBytes uint64  `json:"heap_alloc_bytes"`
	P50Ms     float64 `json:"p50_ms"`
	P99Ms     float64 `json:"p99_ms"`
	hasLat    bool
}

// Sample takes one sample at now: the deltas of every upstream's counters
// since the previous sample, summed per id (a worker and its replacement
// are one line), and the memory of each worker.
func (s *Stats) Sample(now time.Time) {
	ups := s.pool.Upstreams()
	hists := *s.hists.Load()
	live := make(map[*pool.Upstream]bool, len(ups))
	cur := make(map[*pool.Upstream]counters, len(ups))
	deltas := map[int]*counters{}
	for _, u := range ups {
		live[u] = true
		c := counters{requests: u.Requests(), errors: u.Failures() + u.StatusClass(5)}
		if h := hists[u]; h != nil {
			c.lat = h.load()
		}
		cur[u] = c
		d := deltas[u.ID]
		if d == nil {
			d = &counters{}
			deltas[u.ID] = d
		}
		p := s.prev[u] // zero for an upstream new since the last sample
		d.requests += c.requests - min(p.requests, c.requests)
		d.errors += c.errors - min(p.errors, c.errors)
		for i := range c.lat {
			d.lat[i] += c.lat[i] - min(p.lat[i], c.lat[i])
		}
	}
	s.prune(live)

	s.smu.Lock()
	defer s.smu.Unlock()
	secs := s.interval.Seconds()
	if n := len(s.ring); n > 0 {
		secs = max(now.Sub(s.ring[n-1].at).Seconds(), 0.001)
	}
	first := len(s.ring) == 0
	smp := sample{at: now, ups: make(map[int]point, len(deltas))}
	var totalLat histCounts
	for id, d := range deltas {
		var pt point
		if !first {
			pt.ReqPerSec, pt.ErrPerSec = float64(d.requests)/secs, float64(d.errors)/secs
		}
		s.lat[id] = pushWindow(s.lat[id], d.lat, s.minute)
		totalLat.add(&d.lat)
		pt.P50Ms, pt.P99Ms, pt.hasLat = percentiles(s.lat[id])
		smp.ups[id] = pt
		smp.total.ReqPerSec += pt.ReqPerSec
		smp.total.ErrPerSec += pt.ErrPerSec
	}
	for id := range s.lat {
		if _, ok := deltas[id]; !ok {
			delete(s.lat, id)
		}
	}
	s.total = pushWindow(s.total, totalLat, s.minute)
	smp.total.P50Ms, smp.total.P99Ms, smp.total.hasLat = percentiles(s.total)
	for _, v := range s.sup.Workers() {
		pt, ok := smp.ups[v.ID]
		if !ok {
			continue
		}
		if m := v.Upstream.Memory(); m != nil {
			pt.RSSBytes, pt.HeapBytes = m.RSSBytes, m.HeapAllocBytes
			smp.total.RSSBytes += m.RSSBytes
			smp.total.HeapBytes += m.HeapAllocBytes
		}
		smp.ups[v.ID] = pt
	}
	s.prev = cur
	if len(s.ring) == s.points {
		copy(s.ring, s.ring[1:])
		s.ring = s.ring[:s.points-1]
	}
	s.ring = append(s.ring, smp)
}

// pushWindow appends c to a window of at most n histograms.
func pushWindow(w []histCounts, c histCounts, n int) []histCounts {
	if len(w) >= n {
		copy(w, w[len(w)-n+1:])
		w = w[:n-1]
	}
	return append(w, c)
}

// percentiles returns p50 and p99 of a window, in milliseconds.
func percentiles(w []histCounts) (p50, p99 float64, ok bool) {
	var sum histCounts
	for i := range w {
		sum.add(&w[i])
	}
	p50, ok = sum.quantile(0.50)
	p99, _ = sum.quantile(0.99)
	return round3(p50), round3(p99), ok
}

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }

// latest returns the newest sample's point of id and of the pool.
func (s *Stats) latest(id int) (pt point, ok bool) {
	s.smu.RLock()
	defer s.smu.RUnlock()
	if len(s.ring) == 0 {
		return point{}, false
	}
	pt, ok = s.ring[len(s.ring)-1].ups[id]
	return pt, ok
}

func (s *Stats) latestTotal() (point, bool) {
	s.smu.RLock()
	defer s.smu.RUnlock()
	if len(s.ring) == 0 {
		return point{}, false
	}
	return s.ring[len(s.ring)-1].total, true
}

// History is the ring buffer as the charts take it: one time axis and,
// per worker id and for the pool, a value per time or null where the id
// had no upstream then.
type History struct {
	IntervalSeconds float64          `json:"interval_seconds"`
	Times           []int64          `json:"times"` // unix seconds
	Workers         []HistorySeries  `json:"workers"`
	Total           HistorySeriesSet `json:"total"`
}

// HistorySeries is one worker id's lines.
type HistorySeries struct {
	ID int `json:"id"`
	HistorySeriesSet
}

// HistorySeriesSet holds the charted values, one per time.
type HistorySeriesSet struct {
	ReqPerSec []*float64 `json:"req_per_sec"`
	ErrPerSec []*float64 `json:"errors_per_sec"`
	RSSBytes  []*float64 `json:"rss_bytes"`
}

// history returns the ring buffer's content.
func (s *Stats) history() History {
	s.smu.RLock()
	defer s.smu.RUnlock()
	h := History{IntervalSeconds: s.interval.Seconds(), Times: make([]int64, len(s.ring))}
	ids := map[int]bool{}
	for i, smp := range s.ring {
		h.Times[i] = smp.at.Unix()
		for id := range smp.ups {
			ids[id] = true
		}
	}
	sorted := make([]int, 0, len(ids))
	for id := range ids {
		sorted = append(sorted, id)
	}
	sort.Ints(sorted)
	for _, id := range sorted {
		hs := HistorySeries{ID: id, HistorySeriesSet: newSeriesSet(len(s.ring))}
		for i, smp := range s.ring {
			if pt, ok := smp.ups[id]; ok {
				hs.set(i, pt)
			}
		}
		h.Workers = append(h.Workers, hs)
	}
	h.Total = newSeriesSet(len(s.ring))
	for i, smp := range s.ring {
		h.Total.set(i, smp.total)
	}
	if h.Workers == nil {
		h.Workers = []HistorySeries{}
	}
	return h
}

func newSeriesSet(n int) HistorySeriesSet {
	return HistorySeriesSet{ReqPerSec: make([]*float64, n), ErrPerSec: make([]*float64, n), RSSBytes: make([]*float64, n)}
}

func (hs *HistorySeriesSet) set(i int, pt point) {
	rps, eps, rss := round3(pt.ReqPerSec), round3(pt.ErrPerSec), float64(pt.RSSBytes)
	hs.ReqPerSec[i], hs.ErrPerSec[i], hs.RSSBytes[i] = &rps, &eps, &rss
}
