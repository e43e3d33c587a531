package proxy

import (
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"sync/atomic"
)

// idSource makes X-Request-Id values: a random prefix chosen at start and a
// counter, unique per balancer run and cheap to make.
type idSource struct {
	prefix [16]byte
	n      atomic.Uint64
}

func newIDSource() *idSource {
	s := &idSource{}
	var r [8]byte
	_, _ = rand.Read(r[:])
	hex.Encode(s.prefix[:], r[:])
	return s
}

// next appends a new id to b.
func (s *idSource) next(b []byte) []byte {
	b = append(b, s.prefix[:]...)
	b = append(b, '-')
	return strconv.AppendUint(b, s.n.Add(1), 16)
}
