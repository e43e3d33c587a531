package main

import (
	"crypto/rand"

	"github.com/hashicorp/go-hclog"
)

// stickySecret is the key of sticky cookies: STICKY_SECRET, or, when it is
// unset with STICKY=cookie, a random one, so that cookies still cannot be
// forged but do not survive a restart of the balancer (clients then get a
// fresh pick and a new cookie). Several balancers in front of the same
// workers need the same STICKY_SECRET.
func stickySecret(cfg *Config, log hclog.Logger) []byte {
	if cfg.StickySecret != "" {
		return []byte(cfg.StickySecret)
	}
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	if cfg.Sticky == "cookie" {
		log.Info("STICKY_SECRET unset: sticky cookies are signed with a random key and do not survive a restart")
	}
	return secret
}
