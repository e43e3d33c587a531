package admin

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// The dashboard's login. A browser cannot send a bearer token from its
// address bar, so POST /admin/login takes ADMIN_TOKEN once and answers
// with two halves of a session:
//
//   - a cookie, HttpOnly (no script reads it) and SameSite=Strict (no
//     other site's page makes the browser send it), and
//   - a CSRF token in the answer's body, which the page keeps in its
//     origin's localStorage and sends as X-CSRF-Token with every call.
//
// A request authenticated by the cookie needs the header too, and one
// without it is refused with 403 whatever its method. Cookies are not
// kept apart by port, so a browser that visits the client listener on the
// same host sends it the cookie, and application code behind the balancer
// could replay it; the header lives in storage of the admin origin only
// (scheme, host and port), so the cookie alone opens nothing. Sessions
// are held in memory (a restart logs everyone out), end after sessionTTL,
// and POST /admin/logout ends one. A bearer token needs neither, and with
// no ADMIN_TOKEN (loopback only) the API is open and no login is needed.

const (
	sessionCookie = "procbal_admin"
	csrfHeader    = "X-CSRF-Token"
	sessionTTL    = 12 * time.Hour
	maxSessions   = 1024
	maxLoginBody  = 4 << 10
)

type session struct {
	csrf    string
	expires time.Time
}

// sessions holds the live sessions by the SHA-256 of their cookie, so
// neither a map lookup's timing nor a heap dump gives a cookie away.
type sessions struct {
	mu sync.Mutex
	m  map[[sha256.Size]byte]session
}

func newSessions() *sessions { return &sessions{m: map[[sha256.Size]byte]session{}} }

// create starts a session and returns its cookie value and CSRF token.
func (s *sessions) create(now time.Time) (cookie, csrf string) {
	cookie, csrf = randomHex(32), randomHex(32)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.m) >= maxSessions {
		s.evict(now)
	}
	s.m[sha256.Sum256([]byte(cookie))] = session{csrf: csrf, expires: now.Add(sessionTTL)}
	return cookie, csrf
}

// evict drops the expired sessions, and the one closest to expiry when
// none has expired.
func (s *sessions) evict(now time.Time) {
	var soonest [sha256.Size]byte
	var at time.Time
	for k, v := range s.m {
		if now.After(v.expires) {
			delete(s.m, k)
			continue
		}
		if at.IsZero() || v.expires.Before(at) {
			soonest, at = k, v.expires
		}
	}
	if len(s.m) >= maxSessions {
		delete(s.m, soonest)
	}
}

type sessionCheck int

const (
	sessionNone   sessionCheck = iota // no such live session
	sessionNoCSRF                     // a live session, without its CSRF token
	sessionValid                      // a live session and its CSRF token
)

// check looks the cookie's session up and compares its CSRF token with
// csrf in constant time.
func (s *sessions) check(cookie, csrf string, now time.Time) sessionCheck {
	k := sha256.Sum256([]byte(cookie))
	s.mu.Lock()
	v, ok := s.m[k]
	if ok && now.After(v.expires) {
		delete(s.m, k)
		ok = false
	}
	s.mu.Unlock()
	switch {
	case !ok:
		return sessionNone
	case csrf == "" || subtle.ConstantTimeCompare([]byte(csrf), []byte(v.csrf)) != 1:
		return sessionNoCSRF
	}
	return sessionValid
}

func (s *sessions) remove(cookie string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, sha256.Sum256([]byte(cookie)))
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

// publicPath reports whether path is served without authentication: the
// dashboard's page and assets (which hold no data), and the login,
// logout and session calls. The guard still applies to them.
func publicPath(path string) bool {
	return path == "/admin/" || path == "/admin/login" || path == "/admin/logout" ||
		path == "/admin/session" || strings.HasPrefix(path, "/admin/assets/")
}

// authSession authenticates r by its session cookie: sessionValid when
// it names a live session and carries its CSRF token.
func (a *api) authSession(r *http.Request) sessionCheck {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return sessionNone
	}
	return a.sessions.check(c.Value, r.Header.Get(csrfHeader), time.Now())
}

// authenticated reports whether r may use the API: no token is set, or
// it carries the bearer token, or a session with its CSRF token.
func (a *api) authenticated(r *http.Request) bool {
	return a.Token == "" || tokenMatches(r.Header.Get("Authorization"), a.tokenDigest) ||
		a.authSession(r) == sessionValid
}

// loginRequest is the body of POST /admin/login.
type loginRequest struct {
	Token string `json:"token"`
}

// login checks the token and starts a session: 200 with the CSRF token
// and a Set-Cookie, 401 for a wrong token.
func (a *api) login(w http.ResponseWriter, r *http.Request) {
	if a.Token == "" {
		writeJSON(w, http.StatusOK, map[string]any{"token_required": false, "csrf": ""})
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxLoginBody+1))
	if err != nil || len(body) > maxLoginBody {
		writeError(w, http.StatusBadRequest, `body must be {"token": "..."}, at most 4 KiB`)
		return
	}
	var req loginRequest
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, http.StatusBadRequest, `body must be {"token": "..."}: `+err.Error())
		return
	}
	got := sha256.Sum256([]byte(req.Token))
	if subtle.ConstantTimeCompare(got[:], a.tokenDigest[:]) != 1 {
		a.Log.Warn("dashboard login refused: wrong token", "remote", r.RemoteAddr)
		writeError(w, http.StatusUnauthorized, "wrong token")
		return
	}
	now := time.Now()
	cookie, csrf := a.sessions.create(now)
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: cookie, Path: "/", MaxAge: int(sessionTTL / time.Second),
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	})
	a.Log.Info("dashboard login", "remote", r.RemoteAddr)
	writeJSON(w, http.StatusOK, map[string]any{
		"token_required": true, "csrf": csrf, "expires_at": now.Add(sessionTTL).UTC().Format(time.RFC3339),
	})
}

// logout ends the request's session when it carries its CSRF token, and
// always tells the browser to drop the cookie.
func (a *api) logout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(sessionCookie); err == nil && a.authSession(r) == sessionValid {
		a.sessions.remove(c.Value)
	}
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	})
	writeJSON(w, http.StatusOK, map[string]bool{"logged_out": true})
}

// sessionInfo tells the page whether it must show the login form.
func (a *api) sessionInfo(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]bool{
		"token_required": a.Token != "",
		"authenticated":  a.authenticated(r),
	})
}
