package supervisor

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/procbal/procbal/shared/protocol"
)

// shareEvent is one line a "dbshare" helper recorded (see serveDBShare).
type shareEvent struct {
	kind       string // start, share, busy, exit
	pid, share int
	at         time.Time
}

// shareEvents reads what the "dbshare" helpers recorded, in time order.
func (h *harness) shareEvents() []shareEvent {
	b, _ := os.ReadFile(h.starts + ".db")
	var out []shareEvent
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		var e shareEvent
		var ns int64
		if _, err := fmt.Sscan(sc.Text(), &e.kind, &e.pid, &e.share, &ns); err == nil {
			e.at = time.Unix(0, ns)
			out = append(out, e)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].at.Before(out[j].at) })
	return out
}

// shares returns each helper's share now (those that have not exited).
func (h *harness) shares() map[int]int {
	m := map[int]int{}
	for _, e := range h.shareEvents() {
		switch e.kind {
		case "start", "share":
			m[e.pid] = e.share
		case "exit":
			delete(m, e.pid)
		}
	}
	return m
}

// checkTimeline replays the helpers' events, as the workers saw them, and
// fails the test if their shares ever summed to more than budget. It also
// checks the supervisor's own count at every publish. It returns the most
// the workers held together.
func (h *harness) checkTimeline(budget int) int {
	h.t.Helper()
	held, peak := map[int]int{}, 0
	for _, e := range h.shareEvents() {
		switch e.kind {
		case "start", "share":
			held[e.pid] = e.share
		case "exit":
			delete(held, e.pid)
		}
		sum := 0
		for _, k := range held {
			sum += k
		}
		if sum > budget {
			h.t.Fatalf("at %s (%s of %d to %d) the workers held %d connections, over DB_MAX_CONNS=%d: %v",
				e.at.Format("15:04:05.000000"), e.kind, e.pid, e.share, sum, budget, held)
		}
		peak = max(peak, sum)
	}
	if p := h.sup.dbPeak.Load(); p > int64(budget) {
		h.t.Fatalf("the supervisor counted %d connections held at a publish, over DB_MAX_CONNS=%d", p, budget)
	}
	return peak
}

// eventsOf returns the events of pid, of kind when not empty.
func eventsOf(events []shareEvent, pid int, kind string) []shareEvent {
	var out []shareEvent
	for _, e := range events {
		if e.pid == pid && (kind == "" || e.kind == kind) {
			out = append(out, e)
		}
	}
	return out
}

// pidsByID lists the pids of m (by slot id) in slot id order.
func pidsByID(m map[int]int) []int {
	ids := make([]int, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	out := make([]int, len(ids))
	for i, id := range ids {
		out[i] = m[id]
	}
	return out
}

func withDB(budget int, shares bool) func(*Config) {
	return func(c *Config) { c.DBMaxConns, c.DBShares = budget, shares }
}

func TestDBShareFor(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ budget, count, want int }{
		{20, 2, 6}, {20, 8, 2}, {20, 19, 1}, {20, 64, 1}, {10, 1, 5}, {10, 2, 3}, {10, 8, 1}, {10, 9, 1}, {1, 0, 1}, {20, 0, 20},
	} {
		if got := dbShareFor(tc.budget, tc.count); got != tc.want {
			t.Errorf("dbShareFor(%d, %d) = %d, want %d", tc.budget, tc.count, got, tc.want)
		}
	}
}

// Shares follow the count: each worker starts with DB_POOL_MAX =
// DB_MAX_CONNS / (count+1); a scale 2 -> 8 lowers the running workers'
// shares before the new ones need the room, a scale 8 -> 2 raises those
// left once the others are gone, and a rolling reload starts its next
// replacement only once a drained worker has exited, when the budget
// needs it. The workers' shares never sum to more than DB_MAX_CONNS.
func TestDBSharesFollowScaleAndReload(t *testing.T) {
	t.Parallel()
	const budget = 10
	h := newHarness(t, 2, "dbshare", withDB(budget, true))
	two := h.waitServing(2)
	for id, pid := range two {
		if got := h.shares()[pid]; got != 3 {
			t.Fatalf("worker %d started with DB_POOL_MAX %d, want 10/3 = 3", id, got)
		}
	}

	start := time.Now()
	if err := h.sup.Scale(h.ctx(), 8); err != nil {
		t.Fatal(err)
	}
	t.Logf("scale 2 -> 8: %s", time.Since(start).Round(time.Millisecond))
	eight := h.serving()
	shares := h.shares()
	for id, pid := range eight {
		if shares[pid] != 1 {
			t.Fatalf("after the scale to 8, worker %d holds %d, want 10/9 = 1 (shares %v)", id, shares[pid], shares)
		}
	}
	events := h.shareEvents()
	for _, pid := range two {
		if lowered := eventsOf(events, pid, "share"); len(lowered) != 1 || lowered[0].share != 1 {
			t.Fatalf("worker %d was asked for %v, want one lowering to 1", pid, lowered)
		}
	}
	h.checkTimeline(budget)

	start = time.Now()
	if err := h.sup.Scale(h.ctx(), 2); err != nil {
		t.Fatal(err)
	}
	left := pidsByID(h.serving()) // the two started last: the oldest go first
	if len(left) != 2 {
		t.Fatalf("after the scale to 2, serving %v", h.serving())
	}
	h.waitFor(20*time.Second, "the two left raised to 3", func() bool {
		s := h.shares()
		return len(s) == 2 && s[left[0]] == 3 && s[left[1]] == 3
	})
	t.Logf("scale 8 -> 2 and its raises: %s", time.Since(start).Round(time.Millisecond))
	h.checkTimeline(budget)

	start = time.Now()
	if err := h.sup.Reload(h.ctx()); err != nil {
		t.Fatal(err)
	}
	t.Logf("reload of 2: %s", time.Since(start).Round(time.Millisecond))
	events = h.shareEvents()
	var fresh []shareEvent
	for _, e := range events {
		if e.kind == "start" && e.pid != left[0] && e.pid != left[1] && e.at.After(start) {
			fresh = append(fresh, e)
		}
	}
	if len(fresh) != 2 || fresh[0].share != 3 || fresh[1].share != 3 {
		t.Fatalf("reload replacements started as %v, want two with DB_POOL_MAX 3", fresh)
	}
	// 2 x 3 serving and one replacement of 3 fit 10; with the first old
	// worker still draining, a second replacement would need 12.
	first := left[0] // the lower slot id is replaced first
	if exit := eventsOf(events, first, "exit"); len(exit) != 1 || fresh[1].at.Before(exit[0].at) {
		t.Fatalf("the second replacement started at %s, before the worker it replaced first exited (%v)", fresh[1].at, exit)
	}
	if peak := h.checkTimeline(budget); peak > budget {
		t.Fatalf("peak %d", peak)
	}
	t.Logf("peak held by the workers: %d of %d; the supervisor's count at publishes: %d", h.checkTimeline(budget), budget, h.sup.dbPeak.Load())

	err := h.sup.Scale(h.ctx(), 10)
	if !errors.Is(err, ErrDBBudget) || !strings.Contains(err.Error(), "DB_MAX_CONNS") {
		t.Fatalf("scale to 10 with DB_MAX_CONNS=10: %v, want ErrDBBudget naming DB_MAX_CONNS", err)
	}
	if h.sup.checkBudget(9) != nil {
		t.Fatal("9 workers and a replacement fit DB_MAX_CONNS=10, but a scale to 9 is refused")
	}
}

// A worker that answers 503 (busy connections outlast its wait) keeps its
// old share in the count: it is asked again, and the worker that needs
// the room starts only once it has said 200.
func TestDBShareBusyAskedAgain(t *testing.T) {
	t.Parallel()
	const budget = 10
	h := newHarness(t, 1, "dbshare-busy", withDB(budget, true))
	one := h.waitServing(1)[1]
	if err := h.sup.Scale(h.ctx(), 4); err != nil {
		t.Fatal(err)
	}
	events := h.shareEvents()
	busy, lowered := eventsOf(events, one, "busy"), eventsOf(events, one, "share")
	if len(busy) != 1 || len(lowered) != 1 || lowered[0].share != 2 {
		t.Fatalf("worker 1 was asked: busy %v, took %v; want one 503, then 2", busy, lowered)
	}
	// 5 + 2 + 2 fit 10; the third new worker needed worker 1's 3 back.
	var starts []shareEvent
	for _, e := range events {
		if e.kind == "start" && e.pid != one {
			starts = append(starts, e)
		}
	}
	if len(starts) != 3 || starts[2].at.Before(lowered[0].at) {
		t.Fatalf("new workers started %v, want the third after worker 1 took 2 at %s", starts, lowered[0].at)
	}
	h.checkTimeline(budget)
	if n := h.logged("asking again"); n != 1 {
		t.Fatalf("the 503 logged %d times, want once", n)
	}
}

// A worker that does not serve the db-share endpoint (no report socket:
// not on the worker kit) counts as holding the share it started with, for
// good: a scale up starts what fits, says once why the rest waits, and
// never goes over the budget.
func TestDBShareWithoutEndpointHeldBack(t *testing.T) {
	t.Parallel()
	const budget = 10
	h := newHarness(t, 1, "serve", withDB(budget, true))
	h.waitServing(1)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := h.sup.Scale(ctx, 4); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("scale to 4 past a worker that keeps 5 of 10: %v, want the wait to run out", err)
	}
	// 5 + 2 + 2: the fourth worker's 2 does not fit.
	if n := len(h.serving()); n != 3 || len(h.pids()) != 3 {
		t.Fatalf("%d serving, %d started; want 3", n, len(h.pids()))
	}
	if p := h.sup.dbPeak.Load(); p != 9 {
		t.Fatalf("the supervisor counted %d held at most, want 9", p)
	}
	if n := h.logged("does not serve " + protocol.DBSharePath); n != 1 {
		t.Fatalf("the missing endpoint logged %d times, want once:\n%s", n, h.log)
	}
	if n := h.logged("cannot give their database share back"); n != 1 {
		t.Fatalf("the held back start logged %d times, want once:\n%s", n, h.log)
	}
	// A scale down frees what the extra slot waited for, once the loop
	// has seen the first scale's caller give up (at its next tick).
	var err error
	h.waitFor(5*time.Second, "the first scale given up", func() bool {
		err = h.sup.Scale(h.ctx(), 3)
		return !errors.Is(err, ErrBusy)
	})
	if err != nil || len(h.serving()) != 3 {
		t.Fatalf("scale to 3: %v, %d serving", err, len(h.serving()))
	}
}

// Without a database (DBShares off) workers still get DB_POOL_MAX for the
// count, and no share is ever moved or waited for.
func TestDBPoolMaxWithoutDatabase(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 2, "dbshare", withDB(10, false))
	h.waitServing(2)
	if err := h.sup.Scale(h.ctx(), 4); err != nil {
		t.Fatal(err)
	}
	var got []int
	for _, e := range h.shareEvents() {
		if e.kind != "start" {
			t.Fatalf("a share was moved without a database: %+v", e)
		}
		got = append(got, e.share)
	}
	if fmt.Sprint(got) != "[3 3 2 2]" {
		t.Fatalf("workers started with DB_POOL_MAX %v, want [3 3 2 2]", got)
	}
	if h.sup.checkBudget(20) != nil {
		t.Fatal("without a database a scale was refused for the budget")
	}
}

// postShare classifies every answer the contract allows, and a socket
// nobody listens on.
func TestPostShareOutcomes(t *testing.T) {
	t.Parallel()
	dir, err := os.MkdirTemp("", "share")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "r.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	answer := make(chan func(http.ResponseWriter), 1)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req protocol.DBShare
		if r.Method != http.MethodPost || r.URL.Path != protocol.DBSharePath || json.NewDecoder(r.Body).Decode(&req) != nil || req.Max != 2 {
			http.Error(w, "not the contract", http.StatusTeapot)
			return
		}
		(<-answer)(w)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	status := func(code int, st protocol.DBShareStatus) func(http.ResponseWriter) {
		return func(w http.ResponseWriter) {
			w.WriteHeader(code)
			json.NewEncoder(w).Encode(st)
		}
	}
	for _, tc := range []struct {
		name   string
		answer func(http.ResponseWriter)
		want   shareOutcome
		open   int
	}{
		{"200", status(200, protocol.DBShareStatus{Max: 2, Open: 1}), shareOK, 1},
		{"503", status(503, protocol.DBShareStatus{Max: 2, Open: 4, Error: "busy"}), shareBusy, 4},
		{"404", func(w http.ResponseWriter) { http.NotFound(w, nil) }, shareAbsent, 0},
		{"405", func(w http.ResponseWriter) { w.WriteHeader(405) }, shareAbsent, 0},
		{"500", status(500, protocol.DBShareStatus{Max: 3, Error: "boom"}), shareFailed, 0},
		{"200 without a body", func(w http.ResponseWriter) { w.WriteHeader(200) }, shareFailed, 0},
	} {
		answer <- tc.answer
		a := postShare(sock, 2)
		if a.outcome != tc.want || a.open != tc.open || a.max != 2 {
			t.Errorf("%s: outcome %d, open %d, max %d (%v); want outcome %d, open %d", tc.name, a.outcome, a.open, a.max, a.err, tc.want, tc.open)
		}
	}
	if a := postShare(filepath.Join(dir, "none.sock"), 2); a.outcome != shareAbsent {
		t.Errorf("no socket: outcome %d (%v), want shareAbsent", a.outcome, a.err)
	}
}
