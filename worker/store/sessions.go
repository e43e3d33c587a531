package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"sync"
	"time"
)

// Sessions maps session ids to users, each with an expiry. Implementations
// are safe for concurrent use.
type Sessions interface {
	// Put stores user under id for ttl.
	Put(ctx context.Context, id, user string, ttl time.Duration) error
	// User returns the user of session id, or ErrNotFound when it is
	// unknown or expired.
	User(ctx context.Context, id string) (string, error)
	// Delete ends session id, or returns ErrNotFound when it is unknown or
	// expired.
	Delete(ctx context.Context, id string) error
}

// sessionIDBytes is the randomness of a session id: 256 bits.
const sessionIDBytes = 32

// NewSessionID returns a fresh session id: 256 bits from crypto/rand, in
// lowercase hex.
func NewSessionID() string {
	var b [sessionIDBytes]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand since Go 1.24)
	return hex.EncodeToString(b[:])
}

// ValidSessionID reports whether id has the form NewSessionID makes, so
// that anything else is refused without a round trip to Redis.
func ValidSessionID(id string) bool {
	if len(id) != 2*sessionIDBytes {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// MemorySessions keeps sessions in this process, for a worker without
// Redis: other workers do not see them. Expired ones are dropped when read
// and swept at most once a minute on Put.
type MemorySessions struct {
	mu    sync.Mutex
	m     map[string]memSession
	swept time.Time
	now   func() time.Time
}

type memSession struct {
	user    string
	expires time.Time
}

// NewMemorySessions returns an empty in-memory session store.
func NewMemorySessions() *MemorySessions {
	return &MemorySessions{m: make(map[string]memSession), now: time.Now}
}

var _ Sessions = (*MemorySessions)(nil)

// Put implements Sessions.
func (s *MemorySessions) Put(_ context.Context, id, user string, ttl time.Duration) error {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if now.Sub(s.swept) > time.Minute {
		for k, v := range s.m {
			if !now.Before(v.expires) {
				delete(s.m, k)
			}
		}
		s.swept = now
	}
	s.m[id] = memSession{user: user, expires: now.Add(ttl)}
	return nil
}

// User implements Sessions.
func (s *MemorySessions) User(_ context.Context, id string) (string, error) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[id]
	if !ok {
		return "", ErrNotFound
	}
	if !now.Before(v.expires) {
		delete(s.m, id)
		return "", ErrNotFound
	}
	return v.user, nil
}

// Delete implements Sessions.
func (s *MemorySessions) Delete(ctx context.Context, id string) error {
	if _, err := s.User(ctx, id); err != nil {
		return err
	}
	s.mu.Lock()
	delete(s.m, id)
	s.mu.Unlock()
	return nil
}

// Len returns the sessions held, expired ones not yet swept included.
func (s *MemorySessions) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}
