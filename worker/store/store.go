// Package store holds the reference worker's data: items in PostgreSQL
// through a pgx pool sized to the worker's share of the connection budget,
// and sessions in Redis through go-redis, or in the worker's memory when
// there is no Redis. Every call to a server runs under a deadline, so an
// outage makes calls fail fast (ErrUnavailable) instead of hanging.
package store

import (
	"errors"

	"github.com/jackc/pgx/v5/pgconn"
)

// Errors callers tell apart with errors.Is.
var (
	// ErrNotFound is returned for an unknown item or session.
	ErrNotFound = errors.New("store: not found")
	// ErrUnavailable marks a failure of the server or of the way to it
	// (refused, reset, timed out, shutting down, pool busy beyond the
	// deadline): the request may succeed later, so it is a 503, not a 500.
	ErrUnavailable = errors.New("store: unavailable")
	// ErrNotMigrated is returned, wrapped as ErrUnavailable, while the
	// schema has not been migrated yet (PostgreSQL was down at start).
	ErrNotMigrated = errors.New("store: schema not migrated yet")
)

// unavailableError is a failure worth retrying later: it is ErrUnavailable
// and unwraps to its cause.
type unavailableError struct {
	op  string
	err error
}

func (e *unavailableError) Error() string        { return e.op + ": " + e.err.Error() }
func (e *unavailableError) Unwrap() error        { return e.err }
func (e *unavailableError) Is(target error) bool { return target == ErrUnavailable }

func unavailable(op string, err error) error { return &unavailableError{op: op, err: err} }

// pgFailure classifies a PostgreSQL error: an SQL error the server answered
// with is the caller's problem (wrapped as is), anything else (network,
// deadline, the server going away) is ErrUnavailable.
func pgFailure(op string, err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && !serverGone(pe.Code) {
		return &opError{op: op, err: err}
	}
	return unavailable(op, err)
}

// serverGone reports SQLSTATE classes that mean "not now" rather than "not
// this": connection exception (08), insufficient resources (53, e.g. too
// many connections), operator intervention (57: shutdown, cancel).
func serverGone(code string) bool {
	if len(code) < 2 {
		return false
	}
	switch code[:2] {
	case "08", "53", "57":
		return true
	}
	return false
}

type opError struct {
	op  string
	err error
}

func (e *opError) Error() string { return e.op + ": " + e.err.Error() }
func (e *opError) Unwrap() error { return e.err }
