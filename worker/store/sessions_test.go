package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/procbal/procbal/worker/store/storetest"
)

// Session ids carry 256 random bits and only their own form is valid.
func TestSessionIDs(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 1000 {
		id := NewSessionID()
		if !ValidSessionID(id) || seen[id] {
			t.Fatalf("id %q: valid %v, repeated %v", id, ValidSessionID(id), seen[id])
		}
		seen[id] = true
	}
	for _, bad := range []string{"", "abc", NewSessionID()[1:], NewSessionID()[1:] + "G", NewSessionID()[1:] + "A"} {
		if ValidSessionID(bad) {
			t.Fatalf("%q accepted", bad)
		}
	}
}

// In-memory sessions expire after their TTL and are swept.
func TestMemorySessionsExpire(t *testing.T) {
	t.Parallel()
	s := NewMemorySessions()
	now := time.Unix(1000, 0)
	s.now = func() time.Time { return now }
	ctx := context.Background()
	s.Put(ctx, "a", "alice", time.Minute)
	s.Put(ctx, "b", "bob", time.Hour)
	if u, err := s.User(ctx, "a"); err != nil || u != "alice" {
		t.Fatalf("User(a) = %q, %v", u, err)
	}
	now = now.Add(2 * time.Minute)
	if _, err := s.User(ctx, "a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("expired session: %v", err)
	}
	if err := s.Delete(ctx, "a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleting an expired session: %v", err)
	}
	now = now.Add(2 * time.Hour)
	s.Put(ctx, "c", "carol", time.Minute) // sweeps b
	if s.Len() != 1 {
		t.Fatalf("%d sessions held after the sweep, want 1", s.Len())
	}
	if err := s.Delete(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.User(ctx, "c"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted session: %v", err)
	}
}

// Redis sessions round-trip with their TTL.
func TestRedisSessions(t *testing.T) {
	t.Parallel()
	rd := storetest.SharedRedis(t)
	r, err := OpenRedis(RedisOptions{URL: rd.URL(0)})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx := context.Background()
	id := NewSessionID()
	if err := r.Put(ctx, id, "alice", time.Hour); err != nil {
		t.Fatal(err)
	}
	if u, err := r.User(ctx, id); err != nil || u != "alice" {
		t.Fatalf("User = %q, %v", u, err)
	}
	if d, err := r.TTL(ctx, id); err != nil || d <= 59*time.Minute || d > time.Hour {
		t.Fatalf("TTL = %s, %v; want about 1h", d, err)
	}
	if err := r.Delete(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := r.User(ctx, id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted session: %v", err)
	}
	if err := r.Delete(ctx, id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleting twice: %v", err)
	}
	if err := r.Put(ctx, id, "bob", time.Second); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond)
	if _, err := r.User(ctx, id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("session past its TTL: %v", err)
	}
}

// Issue 10: with Redis stopped, calls fail fast with ErrUnavailable, and
// work again once it is back, on the same client.
func TestRedisOutageFailsFastAndRecovers(t *testing.T) {
	t.Parallel()
	rd := storetest.PrivateRedis(t)
	r, err := OpenRedis(RedisOptions{URL: rd.URL(0)})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx := context.Background()
	if err := r.Ping(ctx, time.Second); err != nil {
		t.Fatal(err)
	}
	if err := rd.Stop(); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		start := time.Now()
		if _, err := r.User(ctx, NewSessionID()); !errors.Is(err, ErrUnavailable) || time.Since(start) > time.Second {
			t.Fatalf("User while down: %v after %s", err, time.Since(start))
		}
		start = time.Now()
		if err := r.Ping(ctx, time.Second); !errors.Is(err, ErrUnavailable) || time.Since(start) > time.Second {
			t.Fatalf("Ping while down: %v after %s", err, time.Since(start))
		}
	}
	if err := rd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "redis to answer again", func() bool { return r.Put(ctx, NewSessionID(), "x", time.Minute) == nil })
}
