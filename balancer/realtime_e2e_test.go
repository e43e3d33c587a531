package main

import (
	"bufio"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
)

// Issue 13 items 2, 3 and 5 with the reference worker: its WebSocket echo
// and its event stream through the balancer; a rolling reload sends each
// open WebSocket a 1001 "going away" from the worker kit.
func TestReferenceWorkerRealtime(t *testing.T) {
	t.Parallel()
	b := startBalancer(t, 2, "MAX_WORKERS=2", "DRAIN_TIMEOUT=2s")
	conns := make([]*websocket.Conn, 4)
	for i := range conns {
		c, resp, err := websocket.DefaultDialer.Dial("ws://"+b.addr+"/api/ws", nil)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		t.Cleanup(func() { c.Close() })
		if resp.Header.Get("X-Worker-Id") == "" {
			t.Fatal("no X-Worker-Id on the 101")
		}
		conns[i] = c
	}
	for i, c := range conns {
		msg := strings.Repeat("e", 10+i)
		if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		if _, got, err := c.ReadMessage(); err != nil || string(got) != msg {
			t.Fatalf("echo %d: %q %v", i, got, err)
		}
	}

	resp, err := http.Get("http://" + b.addr + "/api/events?n=3&interval_ms=200")
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(resp.Body)
	events, last := 0, time.Now()
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "data: ") {
			if events > 0 && time.Since(last) > time.Second {
				t.Errorf("event %d came %v after the one before: buffered", events, time.Since(last))
			}
			events, last = events+1, time.Now()
		}
	}
	resp.Body.Close()
	if events != 3 {
		t.Fatalf("%d events through the balancer, want 3", events)
	}

	if code := b.adminReq("POST", "/admin/reload", "", nil); code != 200 {
		t.Fatalf("reload: %d", code)
	}
	for i, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(15 * time.Second))
		_, _, err := c.ReadMessage()
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway {
			t.Errorf("tunnel %d after the reload: %v, want close 1001 from the stopping worker", i, err)
		}
	}
}
