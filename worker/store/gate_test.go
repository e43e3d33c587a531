package store

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The gate admits at most its limit, in arrival order, follows resizes
// both ways, and a waiter that gives up leaves no place taken.
func TestGate(t *testing.T) {
	t.Parallel()
	var g gate
	g.resize(2)
	ctx := context.Background()
	for range 2 {
		if err := g.acquire(ctx); err != nil {
			t.Fatal(err)
		}
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := g.acquire(short); err == nil {
		t.Fatal("a third holder got in with a limit of 2")
	}
	g.resize(1) // two holders, limit 1: the next gets in after both left
	got := make(chan int, 2)
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() {
			if err := g.acquire(ctx); err == nil {
				got <- i
				time.Sleep(5 * time.Millisecond)
				g.release()
			}
		})
		waitFor(t, "the waiter to queue", func() bool { // arrive in order
			g.mu.Lock()
			defer g.mu.Unlock()
			return g.waiters.Len() == i+1
		})
	}
	g.release()
	select {
	case i := <-got:
		t.Fatalf("waiter %d got in with 1 holder left and a limit of 1", i)
	case <-time.After(20 * time.Millisecond):
	}
	g.release()
	if a, b := <-got, <-got; a != 0 || b != 1 {
		t.Fatalf("waiters served %d then %d, want arrival order", a, b)
	}
	wg.Wait()
	g.resize(3)
	var in, most atomic.Int64
	for range 20 {
		wg.Go(func() {
			if err := g.acquire(ctx); err != nil {
				t.Error(err)
				return
			}
			n := in.Add(1)
			for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
			}
			time.Sleep(time.Millisecond)
			in.Add(-1)
			g.release()
		})
	}
	wg.Wait()
	if m := most.Load(); m > 3 {
		t.Fatalf("%d holders at once with a limit of 3", m)
	}
	if g.held != 0 || g.waiters.Len() != 0 {
		t.Fatalf("held %d, waiting %d after everyone left", g.held, g.waiters.Len())
	}
}
