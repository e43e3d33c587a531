//go:build linux

package proxy_test

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/procbal/procbal/balancer/pool"
	"github.com/procbal/procbal/balancer/proxy"
)

// Issue 13: sticky sessions.

// idBackends starts n backends that answer with their index.
func idBackends(t *testing.T, n int) (*pool.Pool, []*pool.Upstream) {
	addrs := make([]string, n)
	for i := range n {
		id := strconv.Itoa(i)
		addrs[i] = startBackend(t, func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString(id) }).addr
	}
	p, ups := newPool(t, addrs...)
	p.SetStickySecret([]byte("test secret"))
	return p, ups
}

func stickyFront(t *testing.T, p *pool.Pool, mode string) string {
	o := testEngineOptions
	o.Sticky = mode
	return startFrontWith(t, p, o)
}

// get sends GET / with the extra header lines and returns the body and
// the sticky cookie value set, if any.
func stickyGet(t *testing.T, c *http.Client, front, hdr string) (string, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+front+"/", nil)
	if name, value, ok := strings.Cut(hdr, ": "); ok {
		req.Header.Set(name, value)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	set := ""
	for _, ck := range resp.Cookies() {
		if ck.Name == "procbal_sticky" {
			set = ck.Value
			if !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Path != "/" {
				t.Errorf("cookie %+v: want HttpOnly, SameSite=Lax, Path=/", ck)
			}
		}
	}
	return string(body), set
}

func TestStickyCookie(t *testing.T) {
	t.Parallel()
	p, ups := idBackends(t, 3)
	front := stickyFront(t, p, "cookie")
	c := &http.Client{}
	first, cookie := stickyGet(t, c, front, "")
	if cookie == "" {
		t.Fatal("a fresh pick set no cookie")
	}
	hdr := "Cookie: other=1; procbal_sticky=" + cookie
	for range 1000 {
		got, set := stickyGet(t, c, front, hdr)
		if got != first || set != "" {
			t.Fatalf("with its cookie a request went to %s (set %q), want %s", got, set, first)
		}
	}
	// Tampered: a fresh pick, and a new, valid cookie.
	tampered := cookie[:len(cookie)-1] + string(rune('0'+(cookie[len(cookie)-1]-'0'+1)%10))
	if _, set := stickyGet(t, c, front, "Cookie: procbal_sticky="+tampered); set == "" || set == tampered {
		t.Fatalf("tampered cookie: set %q", set)
	}
	// The target gone: the next request succeeds elsewhere, with a new cookie.
	n, _ := strconv.Atoi(first)
	ups[n].SetState(pool.Unhealthy)
	got, set := stickyGet(t, c, front, hdr)
	if got == first || set == "" || set == cookie {
		t.Fatalf("target down: answered by %s, cookie %q", got, set)
	}
	if again, set2 := stickyGet(t, c, front, "Cookie: procbal_sticky="+set); again != got || set2 != "" {
		t.Fatalf("the new cookie leads to %s (set %q), want %s", again, set2, got)
	}
}

func TestStickyIPAndHeader(t *testing.T) {
	t.Parallel()
	p, _ := idBackends(t, 4)
	c := &http.Client{}
	ipFront := stickyFront(t, p, "ip")
	one, _ := stickyGet(t, c, ipFront, "")
	for range 200 {
		if got, _ := stickyGet(t, c, ipFront, ""); got != one {
			t.Fatalf("STICKY=ip: %s then %s from one address", one, got)
		}
	}
	hdrFront := stickyFront(t, p, "header:X-User")
	seen := map[string]bool{}
	for u := range 40 {
		user := fmt.Sprintf("X-User: user-%d", u)
		want, _ := stickyGet(t, c, hdrFront, user)
		seen[want] = true
		for range 5 {
			if got, _ := stickyGet(t, c, hdrFront, user); got != want {
				t.Fatalf("STICKY=header: %s went to %s then %s", user, want, got)
			}
		}
	}
	if len(seen) < 3 {
		t.Errorf("40 users landed on %d of 4 upstreams", len(seen))
	}
}

func TestParseSticky(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"", "off", "cookie", "ip", "header:X-User"} {
		if err := proxy.ParseSticky(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"on", "header:", "header:a b", "cookies"} {
		if proxy.ParseSticky(bad) == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
