package supervisor

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// An operator's recycle replaces one worker, replacement first: the pool
// never has fewer healthy workers than before, the slot counts a manual
// restart, and the other worker is untouched. Unknown ids, a worker with
// nothing to replace and a replacement that never gets healthy answer
// with their errors, and the old worker serves on.
func TestRecycleOnRequest(t *testing.T) {
	t.Parallel()
	mode := modeFile(t, "serve")
	h := newHarness(t, 2, "@"+mode, func(c *Config) { c.StartTimeout = time.Second })
	before := h.waitServing(2)
	lowest := watchHealthy(h.pool)
	if err := h.sup.Recycle(h.ctx(), 1); err != nil {
		t.Fatal(err)
	}
	if low := lowest(); low < 2 {
		t.Fatalf("%d healthy workers during the recycle, want never fewer than 2", low)
	}
	after := h.serving()
	if after[1] == before[1] || after[1] == 0 || after[2] != before[2] {
		t.Fatalf("serving %v after recycling worker 1, was %v", after, before)
	}
	if v := h.view(1); v.Restarts != 1 || v.Cause != CauseManual || h.sup.Restarts()[CauseManual] != 1 {
		t.Fatalf("worker 1 after the recycle: %+v, restarts %v", v, h.sup.Restarts())
	}

	for _, id := range []int{0, 3, 1001} {
		if err := h.sup.Recycle(h.ctx(), id); !errors.Is(err, ErrNoWorker) {
			t.Fatalf("recycle %d: %v, want ErrNoWorker", id, err)
		}
	}

	setMode(t, mode, "never-healthy")
	err := h.sup.Recycle(h.ctx(), 2)
	if err == nil || !strings.Contains(err.Error(), "replacing worker 2") {
		t.Fatalf("recycle with a never healthy replacement: %v", err)
	}
	if now := h.serving(); now[2] != before[2] {
		t.Fatalf("worker 2 is pid %d after its failed recycle, want %d serving on", now[2], before[2])
	}
}
