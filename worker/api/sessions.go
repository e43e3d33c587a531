package api

import (
	"context"

	"github.com/valyala/fasthttp"

	"github.com/procbal/procbal/worker/store"
)

// SessionCookie is the name of the session cookie.
const SessionCookie = "session"

// sessionBody is the answer of POST /api/sessions and GET /api/sessions/me.
type sessionBody struct {
	User     string `json:"user"`
	WorkerID int    `json:"worker_id"`
}

// serveSessions answers POST /api/sessions {"user": "..."}: 201 and a new
// session cookie.
func (h *Handler) serveSessions(ctx *fasthttp.RequestCtx) {
	if !ctx.IsPost() {
		methodNotAllowed(ctx, "POST")
		return
	}
	m, ok := decodeObject(ctx)
	if !ok {
		return
	}
	user, why := textField(m, "user")
	if why != "" {
		writeError(ctx, fasthttp.StatusUnprocessableEntity, why)
		return
	}
	id := store.NewSessionID()
	if err := h.sessions.Put(context.Background(), id, user, h.ttl); err != nil {
		h.storeError(ctx, err, "redis", "")
		return
	}
	h.setCookie(ctx, id, int(h.ttl.Seconds()))
	writeJSON(ctx, fasthttp.StatusCreated, sessionBody{User: user, WorkerID: h.ID})
}

// serveSessionMe answers GET /api/sessions/me (who the session is) and
// DELETE /api/sessions/me (end it); 401 without a known session.
func (h *Handler) serveSessionMe(ctx *fasthttp.RequestCtx) {
	if !ctx.IsGet() && !ctx.IsHead() && !ctx.IsDelete() {
		methodNotAllowed(ctx, "GET, HEAD, DELETE")
		return
	}
	id := string(ctx.Request.Header.Cookie(SessionCookie))
	if !store.ValidSessionID(id) {
		writeError(ctx, fasthttp.StatusUnauthorized, "no session")
		return
	}
	if ctx.IsDelete() {
		if err := h.sessions.Delete(context.Background(), id); err != nil {
			h.sessionError(ctx, err)
			return
		}
		h.setCookie(ctx, "", -1)
		ctx.SetStatusCode(fasthttp.StatusNoContent)
		return
	}
	user, err := h.sessions.User(context.Background(), id)
	if err != nil {
		h.sessionError(ctx, err)
		return
	}
	writeJSON(ctx, fasthttp.StatusOK, sessionBody{User: user, WorkerID: h.ID})
}

// sessionError answers 401 for an unknown or expired session, else as
// storeError.
func (h *Handler) sessionError(ctx *fasthttp.RequestCtx, err error) {
	if err == store.ErrNotFound {
		writeError(ctx, fasthttp.StatusUnauthorized, "unknown or expired session")
		return
	}
	h.storeError(ctx, err, "redis", "")
}

// setCookie sets the session cookie for maxAge seconds; a negative maxAge
// deletes it.
func (h *Handler) setCookie(ctx *fasthttp.RequestCtx, id string, maxAge int) {
	c := fasthttp.AcquireCookie()
	defer fasthttp.ReleaseCookie(c)
	c.SetKey(SessionCookie)
	c.SetValue(id)
	c.SetPath("/")
	c.SetHTTPOnly(true)
	c.SetSameSite(fasthttp.CookieSameSiteLaxMode)
	c.SetSecure(h.secure)
	if maxAge < 0 {
		c.SetExpire(fasthttp.CookieExpireDelete)
	} else {
		c.SetMaxAge(maxAge)
	}
	ctx.Response.Header.SetCookie(c)
}
