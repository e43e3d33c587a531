package api

import (
	"context"
	"errors"
	"strconv"

	"github.com/valyala/fasthttp"

	"github.com/procbal/procbal/worker/store"
)

// Paging of GET /api/items.
const (
	DefaultPageSize = 20
	MaxPageSize     = 100
)

// noDatabase is the item routes' 503 without DATABASE_URL.
const noDatabase = "items need PostgreSQL: DATABASE_URL is not set"

// itemPage is the body of GET /api/items. NextCursor is null on the last
// page; else it is the cursor argument of the next one.
type itemPage struct {
	Items      []store.Item `json:"items"`
	NextCursor *string      `json:"next_cursor"`
}

// serveItems answers /api/items: GET lists, POST creates.
func (h *Handler) serveItems(ctx *fasthttp.RequestCtx) {
	switch {
	case ctx.IsGet() || ctx.IsHead():
		h.listItems(ctx)
	case ctx.IsPost():
		h.createItem(ctx)
	default:
		methodNotAllowed(ctx, "GET, HEAD, POST")
	}
}

// serveItem answers /api/items/{id}: GET reads, DELETE deletes.
func (h *Handler) serveItem(ctx *fasthttp.RequestCtx, rawID string) {
	if !ctx.IsGet() && !ctx.IsHead() && !ctx.IsDelete() {
		methodNotAllowed(ctx, "GET, HEAD, DELETE")
		return
	}
	if h.db == nil {
		writeError(ctx, fasthttp.StatusServiceUnavailable, noDatabase)
		return
	}
	id, ok := parseID(rawID)
	if !ok {
		writeError(ctx, fasthttp.StatusBadRequest, "the item id must be a positive integer")
		return
	}
	if ctx.IsDelete() {
		if err := h.db.DeleteItem(context.Background(), id); err != nil {
			h.storeError(ctx, err, "postgres", "no such item")
			return
		}
		ctx.SetStatusCode(fasthttp.StatusNoContent)
		return
	}
	it, err := h.db.Item(context.Background(), id)
	if err != nil {
		h.storeError(ctx, err, "postgres", "no such item")
		return
	}
	writeJSON(ctx, fasthttp.StatusOK, it)
}

func (h *Handler) createItem(ctx *fasthttp.RequestCtx) {
	if h.db == nil {
		writeError(ctx, fasthttp.StatusServiceUnavailable, noDatabase)
		return
	}
	m, ok := decodeObject(ctx)
	if !ok {
		return
	}
	name, why := textField(m, "name")
	if why != "" {
		writeError(ctx, fasthttp.StatusUnprocessableEntity, why)
		return
	}
	it, err := h.db.CreateItem(context.Background(), name)
	if err != nil {
		h.storeError(ctx, err, "postgres", "")
		return
	}
	ctx.Response.Header.Set("Location", "/api/items/"+strconv.FormatInt(it.ID, 10))
	writeJSON(ctx, fasthttp.StatusCreated, it)
}

func (h *Handler) listItems(ctx *fasthttp.RequestCtx) {
	if h.db == nil {
		writeError(ctx, fasthttp.StatusServiceUnavailable, noDatabase)
		return
	}
	limit := DefaultPageSize
	if raw := ctx.QueryArgs().Peek("limit"); len(raw) > 0 {
		n, err := strconv.Atoi(string(raw))
		if err != nil || n < 1 || n > MaxPageSize {
			writeError(ctx, fasthttp.StatusBadRequest, "limit must be an integer in [1, 100]")
			return
		}
		limit = n
	}
	var after int64
	if raw := ctx.QueryArgs().Peek("cursor"); len(raw) > 0 {
		var ok bool
		if after, ok = parseID(string(raw)); !ok {
			writeError(ctx, fasthttp.StatusBadRequest, "cursor must be a next_cursor value")
			return
		}
	}
	items, more, err := h.db.Items(context.Background(), after, limit)
	if err != nil {
		h.storeError(ctx, err, "postgres", "")
		return
	}
	page := itemPage{Items: items}
	if page.Items == nil {
		page.Items = []store.Item{}
	}
	if more {
		next := strconv.FormatInt(items[len(items)-1].ID, 10)
		page.NextCursor = &next
	}
	writeJSON(ctx, fasthttp.StatusOK, page)
}

// parseID reads a positive decimal id: digits only, within int64.
func parseID(s string) (int64, bool) {
	if s == "" || len(s) > 19 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	id, err := strconv.ParseInt(s, 10, 64)
	return id, err == nil && id > 0
}

// storeError answers a failure of dependency dep: 404 (notFound) for
// ErrNotFound, 503 with Retry-After for ErrUnavailable (the cause is
// logged at debug, not shown to clients), 500 for the rest, logged.
func (h *Handler) storeError(ctx *fasthttp.RequestCtx, err error, dep, notFound string) {
	switch {
	case errors.Is(err, store.ErrNotFound) && notFound != "":
		writeError(ctx, fasthttp.StatusNotFound, notFound)
	case errors.Is(err, store.ErrUnavailable):
		if h.log.IsDebug() {
			h.log.Debug("dependency unavailable", "path", string(ctx.Path()), "error", err)
		}
		msg := dep + " unavailable, try again later"
		if errors.Is(err, store.ErrNotMigrated) {
			msg = dep + " unavailable: the schema is not migrated yet"
		}
		ctx.Response.Header.Set("Retry-After", "1")
		writeError(ctx, fasthttp.StatusServiceUnavailable, msg)
	default:
		h.log.Error("request failed", "path", string(ctx.Path()), "error", err)
		writeError(ctx, fasthttp.StatusInternalServerError, "internal error")
	}
}

func methodNotAllowed(ctx *fasthttp.RequestCtx, allow string) {
	ctx.Response.Header.Set("Allow", allow)
	writeError(ctx, fasthttp.StatusMethodNotAllowed, "method not allowed")
}
