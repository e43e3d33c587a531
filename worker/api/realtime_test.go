package api

import (
	"bufio"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/valyala/fasthttp"

	"github.com/procbal/procbal/shared/workerkit"
)

// serveTCP runs h on a loopback listener and returns its address.
func serveTCP(t *testing.T, h *Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: h.Serve}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return ln.Addr().String()
}

// Issue 13 item 5: the reference worker echoes WebSocket messages, says
// which worker took the connection, and closes with 1001 when it stops.
func TestWebSocketEcho(t *testing.T) {
	t.Parallel()
	ws := &workerkit.WebSockets{}
	addr := serveTCP(t, New(Options{ID: 3, PID: 30, WebSockets: ws}))
	c, resp, err := websocket.DefaultDialer.Dial("ws://"+addr+"/api/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if resp.Header.Get("X-Worker-Id") != "3" {
		t.Errorf("X-Worker-Id %q", resp.Header.Get("X-Worker-Id"))
	}
	for i := range 20 {
		msg := strings.Repeat("m", 1+i*100)
		if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		if _, got, err := c.ReadMessage(); err != nil || string(got) != msg {
			t.Fatalf("echo %d: %v", i, err)
		}
	}
	deadline := time.Now().Add(2 * time.Second)
	for ws.Open() != 1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	ws.CloseAll() // what workerkit does on SIGTERM
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, _, err = c.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway {
		t.Fatalf("after CloseAll: %v, want close 1001", err)
	}
	// A plain GET is not an upgrade.
	r, err := http.Get("http://" + addr + "/api/ws")
	if err != nil || r.StatusCode != 400 {
		t.Fatalf("plain GET /api/ws: %v %v", r, err)
	}
}

// Server-Sent Events leave the worker as they are written.
func TestEventsStream(t *testing.T) {
	t.Parallel()
	addr := serveTCP(t, New(Options{ID: 4, PID: 40}))
	resp, err := http.Get("http://" + addr + "/api/events?n=4&interval_ms=100")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("Content-Type %q", ct)
	}
	sc := bufio.NewScanner(resp.Body)
	n := 0
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		var ev struct {
			WorkerID int   `json:"worker_id"`
			N        int   `json:"n"`
			SentMS   int64 `json:"sent_ms"`
		}
		if err := json.Unmarshal([]byte(data), &ev); err != nil || ev.WorkerID != 4 || ev.N != n {
			t.Fatalf("event %q: %v", data, err)
		}
		if late := time.Now().UnixMilli() - ev.SentMS; late > 50 {
			t.Errorf("event %d arrived %d ms after it was sent", n, late)
		}
		n++
	}
	if n != 4 {
		t.Fatalf("%d events, want 4", n)
	}
	for _, bad := range []string{"n=0", "n=x", "interval_ms=0", "n=1000000"} {
		if a := serve(New(Options{}).Serve, "GET", "/api/events?"+bad, "", ""); a.code != 400 {
			t.Errorf("%s: %d", bad, a.code)
		}
	}
}
