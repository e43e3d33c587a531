package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/procbal/procbal/balancer/pool"
	"github.com/procbal/procbal/balancer/supervisor"
)

// Upstreams is the runtime upstream API's view of the supervisor;
// *supervisor.Supervisor implements it. A Supervisor without it has no
// /admin/upstreams.
type Upstreams interface {
	Upstreams() supervisor.UpstreamsView
	AddUpstream(ctx context.Context, address string, weight int) (supervisor.UpstreamChange, error)
	RemoveUpstream(ctx context.Context, id int) (supervisor.UpstreamChange, error)
	RemoveUpstreamAddress(ctx context.Context, address string) (supervisor.UpstreamChange, error)
}

var _ Upstreams = (*supervisor.Supervisor)(nil)

// upstreamOpTimeout bounds one change, a DNS name's lookup included.
const upstreamOpTimeout = 15 * time.Second

// RemoteUpstream is one remote upstream (one address) of GET
// /admin/upstreams and of the answers to POST and DELETE.
type RemoteUpstream struct {
	ID             int    `json:"id"`
	Address        string `json:"address"`
	Entry          string `json:"entry"`
	Weight         int    `json:"weight"`
	Source         string `json:"source"`
	State          string `json:"state"`
	Inflight       int64  `json:"inflight"`
	Requests       uint64 `json:"requests"`
	LastCheckError string `json:"last_check_error"`
	LastCheckAt    string `json:"last_check_at"`
}

// UpstreamEntry is one entry of the remote set: what UPSTREAMS,
// UPSTREAMS_FILE or a POST named.
type UpstreamEntry struct {
	Address string `json:"address"`
	Weight  int    `json:"weight"`
	Source  string `json:"source"`
	IDs     []int  `json:"ids"`
}

// UpstreamList is the body of GET /admin/upstreams.
type UpstreamList struct {
	Upstreams []RemoteUpstream `json:"upstreams"`
	Entries   []UpstreamEntry  `json:"entries"`
}

// UpstreamChange is the body of a successful POST (201) or DELETE (200).
type UpstreamChange struct {
	Entry     UpstreamEntry    `json:"entry"`
	Upstreams []RemoteUpstream `json:"upstreams,omitempty"`
	Removed   []int            `json:"removed,omitempty"`
}

// addRequest is the body of POST /admin/upstreams.
type addRequest struct {
	Address *string         `json:"address"`
	Weight  json.RawMessage `json:"weight"`
}

// upstreamRoutes registers /admin/upstreams when the supervisor has the
// runtime upstream API.
func (a *api) upstreamRoutes(mux *http.ServeMux) {
	u, ok := a.Supervisor.(Upstreams)
	if !ok {
		return
	}
	mux.HandleFunc("/admin/upstreams", func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet:
			writeJSON(w, http.StatusOK, upstreamList(u.Upstreams()))
		case http.MethodPost:
			a.addUpstream(w, r, u)
		case http.MethodDelete:
			a.removeUpstream(w, r, u, "")
		default:
			w.Header().Set("Allow", "GET, POST, DELETE")
			writeError(w, http.StatusMethodNotAllowed, "use GET, POST or DELETE")
		}
	})
	mux.HandleFunc("/admin/upstreams/{id}", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodDelete {
			w.Header().Set("Allow", http.MethodDelete)
			writeError(w, http.StatusMethodNotAllowed, "use DELETE")
			return
		}
		a.removeUpstream(w, r, u, r.PathValue("id"))
	})
}

func (a *api) addUpstream(w http.ResponseWriter, r *http.Request, u Upstreams) {
	address, weight, err := parseAdd(r)
	if err != nil {
		a.failUpstream(w, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), upstreamOpTimeout)
	defer cancel()
	ch, err := u.AddUpstream(ctx, address, weight)
	if err != nil {
		a.failUpstream(w, err)
		return
	}
	a.Log.Info("remote upstream added through the API", "entry", ch.Entry.Address, "weight", ch.Entry.Weight, "ids", ch.Entry.IDs)
	writeJSON(w, http.StatusCreated, changeOf(ch))
}

// removeUpstream removes by id (DELETE /admin/upstreams/{id}) or, with no
// id, by the address query parameter (DELETE /admin/upstreams?address=),
// which also reaches a DNS name that has no upstream yet.
func (a *api) removeUpstream(w http.ResponseWriter, r *http.Request, u Upstreams, idText string) {
	ctx, cancel := context.WithTimeout(r.Context(), upstreamOpTimeout)
	defer cancel()
	var ch supervisor.UpstreamChange
	var err error
	if idText == "" {
		address := r.URL.Query().Get("address")
		if address == "" {
			a.failUpstream(w, badRequest("DELETE /admin/upstreams/{id}, or /admin/upstreams?address=ADDRESS"))
			return
		}
		ch, err = u.RemoveUpstreamAddress(ctx, address)
	} else {
		id, perr := strconv.Atoi(idText)
		if perr != nil || id < 1 {
			a.failUpstream(w, badRequest("upstream id must be a positive integer, got %q", idText))
			return
		}
		ch, err = u.RemoveUpstream(ctx, id)
	}
	if err != nil {
		a.failUpstream(w, err)
		return
	}
	a.Log.Info("remote upstream removed through the API", "entry", ch.Entry.Address, "removed", ch.Removed)
	writeJSON(w, http.StatusOK, changeOf(ch))
}

// parseAdd reads a POST body: 400 unless it is {"address": "...",
// "weight": N} (weight optional, 1 by default), 422 for a weight out of
// [1, pool.MaxWeight]. The address itself is checked by the supervisor.
func parseAdd(r *http.Request) (string, int, error) {
	var req addRequest
	if err := decodeBody(r, &req, `{"address": "host:port", "weight": N}`); err != nil {
		return "", 0, err
	}
	if req.Address == nil || strings.TrimSpace(*req.Address) == "" {
		return "", 0, badRequest(`"address" is missing`)
	}
	weight := 1
	if w := string(req.Weight); w != "" && w != "null" {
		f, ok := new(big.Float).SetString(w)
		if !ok || !f.IsInt() {
			return "", 0, badRequest(`"weight" must be an integer, got %s`, w)
		}
		n, acc := f.Int64()
		if acc != big.Exact || n < 1 || n > pool.MaxWeight {
			return "", 0, &apiError{http.StatusUnprocessableEntity,
				fmt.Sprintf(`"weight" must be in [1, %d], got %s`, pool.MaxWeight, w)}
		}
		weight = int(n)
	}
	return *req.Address, weight, nil
}

// failUpstream answers an upstream API error: 400 for a malformed request
// or a local worker's id, 404 for an unknown id or address, 409 for an
// address already in the set, 422 for a bad address or weight, 500 when
// UPSTREAMS_FILE could not be written (the set is unchanged), 503 while
// shutting down.
func (a *api) failUpstream(w http.ResponseWriter, err error) {
	var bad *supervisor.BadUpstreamError
	switch {
	case errors.As(err, &bad):
		err = &apiError{http.StatusUnprocessableEntity, err.Error()}
	case errors.Is(err, supervisor.ErrLocalWorker):
		err = &apiError{http.StatusBadRequest, err.Error()}
	case errors.Is(err, supervisor.ErrNoSuchUpstream):
		err = &apiError{http.StatusNotFound, err.Error()}
	case errors.Is(err, supervisor.ErrUpstreamExists):
		err = &apiError{http.StatusConflict, err.Error()}
	}
	a.fail(w, err)
}

func upstreamList(v supervisor.UpstreamsView) UpstreamList {
	out := UpstreamList{Upstreams: make([]RemoteUpstream, 0, len(v.Upstreams)), Entries: make([]UpstreamEntry, 0, len(v.Entries))}
	for _, u := range v.Upstreams {
		out.Upstreams = append(out.Upstreams, remoteOf(u))
	}
	for _, e := range v.Entries {
		out.Entries = append(out.Entries, UpstreamEntry(e))
	}
	return out
}

func changeOf(ch supervisor.UpstreamChange) UpstreamChange {
	out := UpstreamChange{Entry: UpstreamEntry(ch.Entry), Removed: ch.Removed}
	for _, u := range ch.Added {
		out.Upstreams = append(out.Upstreams, remoteOf(u))
	}
	return out
}

func remoteOf(v supervisor.UpstreamView) RemoteUpstream {
	u := v.Upstream
	at, why := lastCheck(u)
	return RemoteUpstream{
		ID: u.ID, Address: u.Address, Entry: v.Entry, Weight: max(u.Weight, 1), Source: v.Source,
		State: u.State().String(), Inflight: u.Inflight(), Requests: u.Requests(),
		LastCheckError: why, LastCheckAt: at,
	}
}

// lastCheck returns an upstream's last probe time (RFC 3339 with
// fractions, UTC; "" before the first) and why it failed ("" when it
// passed).
func lastCheck(u *pool.Upstream) (at, why string) {
	t, why := u.LastCheck()
	if t.IsZero() {
		return "", ""
	}
	return t.UTC().Format(time.RFC3339Nano), why
}
