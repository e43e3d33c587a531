package store

import (
	"context"
	"errors"
	"time"
)

// ErrShareBusy is returned by SetShare when connections beyond a lowered
// share were still in use when its wait ended. The share holds anyway:
// they are closed as they are released.
var ErrShareBusy = errors.New("store: connections beyond the share are still in use")

// Share returns the most connections in use at once, now.
func (db *Postgres) Share() int { return db.gate.size() }

// OpenConns returns the connections the worker holds open to PostgreSQL,
// in use or idle, being opened included.
func (db *Postgres) OpenConns() int {
	n := int(db.pool.Load().Stat().TotalConns())
	db.retMu.Lock()
	for _, p := range db.retiring {
		n += int(p.Stat().TotalConns())
	}
	db.retMu.Unlock()
	return n
}

// SetShare changes the worker's share of the connection budget to k (at
// least 1) while it runs, and returns the connections left open.
//
// Lowering it gates new queries at once (at most k in use), closes idle
// connections beyond k at once and busy ones beyond k as they are released,
// and waits up to wait for OpenConns() <= k; ErrShareBusy if that did not
// happen in time. Raising it beyond the pool's size replaces the pool by a
// larger one; the old one closes its connections as they are released.
func (db *Postgres) SetShare(k int, wait time.Duration) (int, error) {
	if k < 1 {
		return db.OpenConns(), errors.New("store: a share must be at least 1")
	}
	db.shareMu.Lock()
	defer db.shareMu.Unlock()
	if k > db.pool.Load().max {
		if err := db.grow(k); err != nil {
			return db.OpenConns(), err
		}
	}
	old := db.gate.size()
	db.gate.resize(k)
	if k != old {
		db.log.Info("database share changed", "from", old, "to", k)
	}
	deadline := time.Now().Add(wait)
	for {
		open := db.OpenConns()
		if open > k {
			db.closeIdleBeyond(k)
			open = db.OpenConns()
		}
		if open <= k {
			return open, nil
		}
		if time.Now().After(deadline) {
			return open, ErrShareBusy
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// closeIdleBeyond closes idle connections until at most k are open, or no
// idle one is left.
func (db *Postgres) closeIdleBeyond(k int) {
	p := db.pool.Load()
	idle := p.AcquireAllIdle(context.Background())
	extra := db.OpenConns() - k
	for _, c := range idle {
		if extra > 0 {
			closeConn(c)
			extra--
			continue
		}
		c.Release()
	}
}

// grow replaces the pool by one of k connections. Queries in flight keep
// their connections from the old pool, which closes each as it comes back.
func (db *Postgres) grow(k int) error {
	np, err := db.newPool(k)
	if err != nil {
		return err
	}
	old := db.pool.Swap(np)
	db.retMu.Lock()
	db.retiring = append(db.retiring, old.Pool)
	db.retMu.Unlock()
	db.log.Info("database pool grown", "from", old.max, "to", k)
	go func() {
		old.Close() // returns once every connection came back and is closed
		db.retMu.Lock()
		defer db.retMu.Unlock()
		for i, p := range db.retiring {
			if p == old.Pool {
				db.retiring = append(db.retiring[:i], db.retiring[i+1:]...)
				break
			}
		}
	}()
	return nil
}
