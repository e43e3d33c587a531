package api

import (
	"bufio"
	"strconv"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/valyala/fasthttp"
)

// The real-time routes: what a Node app behind the balancer would do with
// socket.io or Server-Sent Events, for tests and benchmarks.

// MaxEvents bounds one /api/events stream.
const MaxEvents = 100_000

var upgrader = websocket.FastHTTPUpgrader{
	ReadBufferSize:  4096,
	WriteBufferSize: 4096,
	// Any origin: the balancer in front decides who reaches the worker.
	CheckOrigin: func(*fasthttp.RequestCtx) bool { return true },
}

// serveWebSocket is GET /api/ws: a WebSocket that echoes every message.
// The 101 says which worker took it (X-Worker-Id); when the worker stops,
// the client gets a close frame with 1001 "going away" (workerkit.WebSockets).
func (h *Handler) serveWebSocket(ctx *fasthttp.RequestCtx) {
	if !websocket.FastHTTPIsWebSocketUpgrade(ctx) {
		writeError(ctx, fasthttp.StatusBadRequest, "want a WebSocket upgrade")
		return
	}
	ctx.Response.Header.Set("X-Worker-Id", strconv.Itoa(h.ID))
	err := upgrader.Upgrade(ctx, func(c *websocket.Conn) {
		defer c.Close()
		if !h.ws.Add(c) {
			return
		}
		defer h.ws.Remove(c)
		for {
			kind, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			if err := c.WriteMessage(kind, msg); err != nil {
				return
			}
		}
	})
	if err != nil {
		h.log.Debug("websocket upgrade failed", "error", err)
	}
}

// serveEvents is GET /api/events?n=N&interval_ms=M: a Server-Sent Events
// stream of N events (default 10), one every M milliseconds (default
// 1000), each flushed as it is written and carrying the worker id, its
// number and the time it was sent (unix milliseconds).
func (h *Handler) serveEvents(ctx *fasthttp.RequestCtx) {
	n, ok := argOr(ctx, "n", 10, 1, MaxEvents)
	if !ok {
		return
	}
	ms, ok := argOr(ctx, "interval_ms", 1000, 1, 60_000)
	if !ok {
		return
	}
	ctx.SetContentType("text/event-stream")
	ctx.Response.Header.Set("Cache-Control", "no-cache")
	id := h.ID
	ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
		for i := range n {
			if i > 0 {
				time.Sleep(time.Duration(ms) * time.Millisecond)
			}
			var b []byte
			b = append(b, "id: "...)
			b = strconv.AppendInt(b, int64(i), 10)
			b = append(b, "\ndata: {\"worker_id\":"...)
			b = strconv.AppendInt(b, int64(id), 10)
			b = append(b, ",\"n\":"...)
			b = strconv.AppendInt(b, int64(i), 10)
			b = append(b, ",\"sent_ms\":"...)
			b = strconv.AppendInt(b, time.Now().UnixMilli(), 10)
			b = append(b, "}\n\n"...)
			if _, err := w.Write(b); err != nil || w.Flush() != nil {
				return // the client left
			}
		}
	})
}

// argOr is intArg with a default other than the lower bound.
func argOr(ctx *fasthttp.RequestCtx, name string, def, lo, hi int) (int, bool) {
	if len(ctx.QueryArgs().Peek(name)) == 0 {
		return def, true
	}
	return intArg(ctx, name, lo, hi)
}
