package workerkit

import (
	"sync"
	"time"

	"github.com/fasthttp/websocket"
)

// WebSockets tracks a worker's open WebSocket connections, so that when the
// worker stops (SIGTERM from the balancer: a reload, a scale down, a
// recycle) each client gets a close frame with 1001 "going away" and can
// reconnect at once, through the balancer, to another worker. A hijacked
// connection is invisible to the HTTP server's graceful shutdown, so
// without this a client would only learn of the stop when the socket drops.
// Pass it as Options.WebSockets; the zero value is ready. Safe for
// concurrent use.
type WebSockets struct {
	mu     sync.Mutex
	conns  map[*websocket.Conn]struct{}
	closed bool
}

// Add tracks c until Remove. It reports false, having closed c with 1001,
// when the worker is already stopping.
func (w *WebSockets) Add(c *websocket.Conn) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		goingAway(c)
		return false
	}
	if w.conns == nil {
		w.conns = map[*websocket.Conn]struct{}{}
	}
	w.conns[c] = struct{}{}
	return true
}

// Remove stops tracking c.
func (w *WebSockets) Remove(c *websocket.Conn) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.conns, c)
}

// Open returns the connections tracked now.
func (w *WebSockets) Open() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.conns)
}

// CloseAll sends every tracked connection a close frame with 1001 "going
// away", and refuses connections added later.
func (w *WebSockets) CloseAll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	for c := range w.conns {
		goingAway(c)
	}
}

func goingAway(c *websocket.Conn) {
	msg := websocket.FormatCloseMessage(websocket.CloseGoingAway, "going away")
	_ = c.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
}
