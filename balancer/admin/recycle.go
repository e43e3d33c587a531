package admin

import (
	"context"
	"errors"
	"net/http"

	"github.com/procbal/procbal/balancer/supervisor"
)

// Recycler is a Supervisor that recycles one worker on request;
// *supervisor.Supervisor is one. Without it POST /admin/recycle answers
// 501.
type Recycler interface {
	// Recycle replaces local worker id, replacement first, and returns
	// once the replacement serves; see supervisor.Recycle.
	Recycle(ctx context.Context, id int) error
}

var _ Recycler = (*supervisor.Supervisor)(nil)

// recycleRequest is the body of POST /admin/recycle.
type recycleRequest struct {
	Worker *int `json:"worker"`
}

// recycle serves POST /admin/recycle {"worker": id}: the worker is
// replaced as MAX_REQUESTS would replace it, and the answer comes once
// the replacement serves.
func (a *api) recycle(w http.ResponseWriter, r *http.Request) {
	id, err := parseRecycle(r)
	if err != nil {
		a.fail(w, err)
		return
	}
	rec, ok := a.Supervisor.(Recycler)
	if !ok {
		writeError(w, http.StatusNotImplemented, "this supervisor cannot recycle workers")
		return
	}
	before := a.pidOf(id)
	ctx, cancel := context.WithTimeout(r.Context(), a.OpTimeout)
	defer cancel()
	switch err := rec.Recycle(ctx, id); {
	case errors.Is(err, supervisor.ErrNoWorker):
		writeError(w, http.StatusNotFound, err.Error())
		return
	case errors.Is(err, supervisor.ErrNotServing):
		writeError(w, http.StatusConflict, err.Error())
		return
	case err != nil:
		a.fail(w, err)
		return
	}
	after := a.pidOf(id)
	a.Log.Info("recycled", "worker_id", id, "previous_pid", before, "pid", after)
	writeJSON(w, http.StatusOK, map[string]int{"worker": id, "previous_pid": before, "pid": after})
}

// parseRecycle reads {"worker": <integer>}: 400 otherwise, 413 over 4 KiB.
func parseRecycle(r *http.Request) (int, error) {
	var req recycleRequest
	if err := decodeBody(r, &req, `{"worker": ID}`); err != nil {
		return 0, err
	}
	if req.Worker == nil {
		return 0, badRequest(`"worker" is missing`)
	}
	return *req.Worker, nil
}

// pidOf returns the pid serving worker id, or 0.
func (a *api) pidOf(id int) int {
	for _, v := range a.Supervisor.Workers() {
		if v.ID == id {
			return v.Upstream.PID
		}
	}
	return 0
}
