package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"time"

	"github.com/procbal/procbal/balancer/supervisor"
)

// maxScaleBody bounds a /admin/scale body; {"workers": 64} needs far less.
const maxScaleBody = 4 << 10

// scaleRequest is the body of POST /admin/scale.
type scaleRequest struct {
	Workers json.RawMessage `json:"workers"`
}

// apiError is an error with the status it answers.
type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return e.msg }

// decodeBody reads r's body, at most maxScaleBody bytes (413 beyond),
// into v as exactly one JSON object with no unknown field (400 otherwise,
// the error naming shape, the body the route wants).
func decodeBody(r *http.Request, v any, shape string) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxScaleBody+1))
	if err != nil {
		return badRequest("reading body: %v", err)
	}
	if len(body) > maxScaleBody {
		return &apiError{http.StatusRequestEntityTooLarge, "body too large"}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("body must be %s: %v", shape, err)
	}
	if dec.More() {
		return badRequest("body must hold one JSON object")
	}
	return nil
}

func badRequest(format string, args ...any) error {
	return &apiError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

// parseScale reads and checks a scale body: 400 when it is not
// {"workers": <integer>}, 422 when the integer is out of range.
func (a *api) parseScale(r *http.Request) (int, error) {
	var req scaleRequest
	if err := decodeBody(r, &req, `{"workers": N}`); err != nil {
		return 0, err
	}
	w := string(req.Workers)
	if w == "" || w == "null" {
		return 0, badRequest(`"workers" is missing`)
	}
	if c := w[0]; c != '-' && (c < '0' || c > '9') {
		return 0, badRequest(`"workers" must be a number, got %s`, w)
	}
	return a.checkCount(w)
}

func (a *api) checkCount(s string) (int, error) {
	f, ok := new(big.Float).SetString(s)
	if !ok || !f.IsInt() {
		return 0, badRequest(`"workers" must be an integer, got %s`, s)
	}
	lo := 1
	if a.AllowZero {
		lo = 0
	}
	n, acc := f.Int64()
	if acc != big.Exact || n < int64(lo) || n > int64(a.WorkerLimit) {
		return 0, &apiError{http.StatusUnprocessableEntity,
			fmt.Sprintf(`"workers" must be in [%d, %d] (WORKER_LIMIT), got %s`, lo, a.WorkerLimit, s)}
	}
	return int(n), nil
}

func (a *api) scale(w http.ResponseWriter, r *http.Request) {
	n, err := a.parseScale(r)
	if err != nil {
		a.fail(w, err)
		return
	}
	prev := a.Supervisor.Active()
	ctx, cancel := context.WithTimeout(r.Context(), a.OpTimeout)
	defer cancel()
	if err := a.Supervisor.Scale(ctx, n); err != nil {
		a.fail(w, err)
		return
	}
	a.Log.Info("scaled", "from", prev, "to", n)
	writeJSON(w, http.StatusOK, map[string]int{"workers": n, "previous": prev})
}

func (a *api) reload(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), a.OpTimeout*time.Duration(max(1, a.Supervisor.Active())))
	defer cancel()
	if err := a.Supervisor.Reload(ctx); err != nil {
		a.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"reloaded": a.Supervisor.Active()})
}

// fail maps an error to its status: the API's own, 422 for a scale beyond
// what DB_MAX_CONNS can share, 409 for a running operation, 503 during
// shutdown, 504 when waiting ran out, and 500 for a reload whose
// replacement never got healthy (the old workers serve on).
func (a *api) fail(w http.ResponseWriter, err error) {
	var ae *apiError
	status := http.StatusInternalServerError
	switch {
	case errors.As(err, &ae):
		status = ae.status
	case errors.Is(err, supervisor.ErrDBBudget):
		status = http.StatusUnprocessableEntity
	case errors.Is(err, supervisor.ErrBusy):
		status = http.StatusConflict
	case errors.Is(err, supervisor.ErrStopping):
		status = http.StatusServiceUnavailable
	case errors.Is(err, context.DeadlineExceeded):
		status = http.StatusGatewayTimeout
	}
	if status >= 500 {
		a.Log.Error("admin operation failed", "error", err)
	}
	writeError(w, status, err.Error())
}
