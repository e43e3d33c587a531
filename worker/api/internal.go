package api

import (
	"encoding/json"
	"errors"

	"github.com/valyala/fasthttp"

	"github.com/procbal/procbal/shared/protocol"
	"github.com/procbal/procbal/worker/store"
)

// ServeInternal serves the balancer's requests on the report socket
// (workerkit.Options.Internal): POST protocol.DBSharePath changes the
// worker's share of the database connection budget (see protocol.DBShare).
func (h *Handler) ServeInternal(ctx *fasthttp.RequestCtx) {
	if string(ctx.Path()) != protocol.DBSharePath {
		writeError(ctx, fasthttp.StatusNotFound, "no such route")
		return
	}
	if !ctx.IsPost() {
		methodNotAllowed(ctx, "POST")
		return
	}
	var req protocol.DBShare
	if err := json.Unmarshal(ctx.PostBody(), &req); err != nil {
		writeError(ctx, fasthttp.StatusBadRequest, `the body must be {"max": K}`)
		return
	}
	if req.Max < 1 {
		writeError(ctx, fasthttp.StatusUnprocessableEntity, "max must be at least 1")
		return
	}
	if h.db == nil {
		writeJSON(ctx, fasthttp.StatusOK, protocol.DBShareStatus{Max: req.Max})
		return
	}
	open, err := h.db.SetShare(req.Max, protocol.DBShareWait)
	st := protocol.DBShareStatus{Max: h.db.Share(), Open: open}
	switch {
	case err == nil:
		writeJSON(ctx, fasthttp.StatusOK, st)
	case errors.Is(err, store.ErrShareBusy):
		st.Error = err.Error()
		writeJSON(ctx, fasthttp.StatusServiceUnavailable, st)
	default:
		h.log.Error("changing the database share failed", "max", req.Max, "error", err)
		st.Error = err.Error()
		writeJSON(ctx, fasthttp.StatusInternalServerError, st)
	}
}
