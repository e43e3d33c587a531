package store

import (
	"container/list"
	"context"
	"sync"
	"sync/atomic"
)

// gate is a counting semaphore whose size can change while it is held:
// at most limit holders at once, waiters served in arrival order. It bounds
// the database connections in use to the worker's current share. Safe for
// concurrent use; the zero value admits no one until resize.
type gate struct {
	mu      sync.Mutex
	held    int
	waiters list.List // of chan struct{}, closed when granted
	limit   atomic.Int64
}

// acquire waits for a place, or returns ctx's error.
func (g *gate) acquire(ctx context.Context) error {
	g.mu.Lock()
	if g.held < int(g.limit.Load()) && g.waiters.Len() == 0 {
		g.held++
		g.mu.Unlock()
		return nil
	}
	ready := make(chan struct{})
	e := g.waiters.PushBack(ready)
	g.mu.Unlock()
	select {
	case <-ready:
		return nil
	case <-ctx.Done():
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-ready: // granted while giving up: pass it on
		g.held--
		g.grant()
	default:
		g.waiters.Remove(e)
	}
	return ctx.Err()
}

// release gives a place back.
func (g *gate) release() {
	g.mu.Lock()
	g.held--
	g.grant()
	g.mu.Unlock()
}

// resize sets the number of places. Holders beyond a lowered limit keep
// theirs until they release it; no one new enters until held < n.
func (g *gate) resize(n int) {
	g.mu.Lock()
	g.limit.Store(int64(n))
	g.grant()
	g.mu.Unlock()
}

// size returns the current limit.
func (g *gate) size() int { return int(g.limit.Load()) }

// grant hands free places to the longest waiters; g.mu is held.
func (g *gate) grant() {
	for g.held < int(g.limit.Load()) {
		e := g.waiters.Front()
		if e == nil {
			return
		}
		g.waiters.Remove(e)
		g.held++
		close(e.Value.(chan struct{}))
	}
}
