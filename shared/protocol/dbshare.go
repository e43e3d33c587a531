package protocol

import "time"

// The database connection budget.
//
// The balancer holds the total budget, DB_MAX_CONNS, and gives each local
// worker a share of it so that N workers can never open more PostgreSQL
// connections than the budget, whatever N is. A worker learns its share two
// ways:
//
//   - At start, from EnvDBPoolMax (DB_POOL_MAX): the most connections its
//     pool may ever hold, migrations included. The reference worker sizes its
//     pgx pool with it (MaxConns = DB_POOL_MAX, MinConns = 0); if unset, 4.
//   - While running, from POST DBSharePath on its report socket
//     (WORKER_REPORT_SOCKET, which only the balancer can reach), with a
//     DBShare body such as {"max": 2}. From then on the worker has at most
//     Max connections in use at once; it closes idle connections beyond Max
//     at once, and busy ones beyond it as they are released.
//
// The answer to POST DBSharePath:
//
//   - 200 and a DBShareStatus once the worker's open connections (busy and
//     idle) are within the share: Open <= Max. The connections are closed
//     on the worker's side when it answers; PostgreSQL may list their
//     backends in pg_stat_activity for a few milliseconds more.
//   - 503 and a DBShareStatus with Error when busy connections could not
//     be closed within DBShareWait (2 s). The new share holds anyway and the
//     extras close as they are released: poll again with the same body.
//   - 400 for a malformed body, 422 for Max < 1, 405 for another method,
//     and 404 from a worker-kit worker without an Internal handler. A
//     worker not built on the kit does not listen on the report socket at
//     all (the dial fails). Treat both as "no database budget to move".
//
// A worker without a database (no DATABASE_URL) answers 200 with Open 0. A
// share may be raised again, also above DB_POOL_MAX: the reference worker
// then replaces its pool by a larger one.
//
// How the balancer keeps the sum within DB_MAX_CONNS: before it starts new
// workers (scale up, or the overlap of a rolling reload) it lowers the
// shares of the running ones with DBSharePath and waits for their 200, then
// spawns the new workers with DB_POOL_MAX set to their share; after workers
// are gone (scale down, drained), it may raise the shares of those left.
const (
	// EnvDBPoolMax is the worker's share of DB_MAX_CONNS at start: the most
	// PostgreSQL connections its pool may hold.
	EnvDBPoolMax = "DB_POOL_MAX"
	// DBSharePath changes a running worker's share, on the report socket.
	DBSharePath = "/internal/db-share"
)

// DBShareWait is how long a worker waits for busy connections beyond a
// lowered share to be released before it answers 503.
const DBShareWait = 2 * time.Second

// DBShare is the body of POST DBSharePath: the most PostgreSQL connections
// the worker may hold from now on, at least 1.
type DBShare struct {
	Max int `json:"max"`
}

// DBShareStatus answers POST DBSharePath: the share now in force and the
// connections the worker holds open (busy and idle) at the time of the
// answer. Error is set on a 503 (and on 4xx answers, alone).
type DBShareStatus struct {
	Max   int    `json:"max"`
	Open  int    `json:"open"`
	Error string `json:"error,omitempty"`
}
