package web

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gorilla/securecookie"
	"github.com/gorilla/sessions"

	"byoc/app/auth"
	"byoc/views"
)

// Session cookie names: the __Host- prefix (production, HTTPS) makes the
// browser refuse the cookie unless it is Secure, has Path=/ and no Domain.
const (
	cookieNameProduction  = "__Host-byoc_session"
	cookieNameDevelopment = "byoc_session"
	minSessionSecretBytes = 32
)

// session is the content of the session cookie. The cookie is signed
// (HMAC-SHA256) and encrypted (AES-256) with keys derived from
// SESSION_SECRET, so any instance can read it and no client can read or
// change it. An empty UserID is an anonymous session (it still carries a
// CSRF token and flash messages).
type session struct {
	UserID  string        `json:"u,omitempty"`
	OrgID   string        `json:"o,omitempty"`
	Version int           `json:"v,omitempty"`
	CSRF    string        `json:"c,omitempty"`
	Created int64         `json:"t"`
	Flashes []views.Flash `json:"f,omitempty"`
}

// sessionStore reads and writes the session cookie through a
// gorilla/sessions CookieStore: its codecs sign and encrypt the value and its
// Options shape the cookie. The value is the typed session struct (as JSON)
// rather than the store's untyped map, so every field has one type.
type sessionStore struct {
	store *sessions.CookieStore
	name  string
	ttl   time.Duration
	now   func() time.Time
}

func newSessionStore(secret []byte, production bool, ttl time.Duration) (*sessionStore, error) {
	if len(secret) < minSessionSecretBytes {
		return nil, fmt.Errorf("web: the session secret must be at least %d bytes", minSessionSecretBytes)
	}
	hashKey, err := hkdf.Key(sha256.New, secret, nil, "byoc session cookie hmac-sha256", 64)
	if err != nil {
		return nil, err
	}
	blockKey, err := hkdf.Key(sha256.New, secret, nil, "byoc session cookie aes-256", 32)
	if err != nil {
		return nil, err
	}
	store := sessions.NewCookieStore(hashKey, blockKey)
	store.MaxAge(int(ttl.Seconds()))
	for _, codec := range store.Codecs {
		if sc, ok := codec.(*securecookie.SecureCookie); ok {
			sc.SetSerializer(securecookie.JSONEncoder{})
		}
	}
	store.Options = &sessions.Options{
		Path:     "/",
		MaxAge:   int(ttl.Seconds()),
		Secure:   production,
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
	}
	st := &sessionStore{store: store, name: cookieNameDevelopment, ttl: ttl, now: time.Now}
	if production {
		st.name = cookieNameProduction
	}
	return st, nil
}

// load decodes the request's session cookie. A missing, tampered, or
// expired cookie gives a new empty session (and reports false).
func (st *sessionStore) load(c *fiber.Ctx) (*session, bool) {
	raw := c.Cookies(st.name)
	if raw != "" {
		var s session
		if err := securecookie.DecodeMulti(st.name, raw, &s, st.store.Codecs...); err == nil {
			age := st.now().Sub(time.Unix(s.Created, 0))
			if age >= 0 && age < st.ttl {
				return &s, true
			}
		}
	}
	return &session{Created: st.now().Unix()}, false
}

// save writes s into the response's cookie. The cookie expires when the
// session does (its creation plus the TTL), however often it is rewritten.
func (st *sessionStore) save(c *fiber.Ctx, s *session) error {
	value, err := securecookie.EncodeMulti(st.name, s, st.store.Codecs...)
	if err != nil {
		return fmt.Errorf("web: encode session: %w", err)
	}
	opts := *st.store.Options
	opts.MaxAge = max(1, int(time.Unix(s.Created, 0).Add(st.ttl).Sub(st.now()).Seconds()))
	hc := sessions.NewCookie(st.name, value, &opts)
	c.Cookie(&fiber.Cookie{
		Name:     hc.Name,
		Value:    hc.Value,
		Path:     hc.Path,
		MaxAge:   hc.MaxAge,
		Expires:  hc.Expires,
		Secure:   hc.Secure,
		HTTPOnly: hc.HttpOnly,
		SameSite: fiber.CookieSameSiteLaxMode,
	})
	return nil
}

// session returns the request's session, decoding the cookie on first use.
func (s *Server) session(c *fiber.Ctx) *session {
	if sess, ok := c.Locals(localSession).(*session); ok {
		return sess
	}
	sess, _ := s.sessions.load(c)
	c.Locals(localSession, sess)
	return sess
}

// saveSession writes the request's session into the response. Every change
// to a session is saved at once; the last save of a request wins.
func (s *Server) saveSession(c *fiber.Ctx) {
	if err := s.sessions.save(c, s.session(c)); err != nil {
		// Only a broken serializer fails here; the request goes on without
		// the change and the log says why.
		id, _ := c.Locals(localRequestID).(string)
		s.log.Error("save session", "request_id", id, "err", err)
	}
}

// startSession replaces the request's session with a new one for a. Fresh
// values and a new CSRF token make an earlier (anonymous or other user's)
// session useless to whoever knew it.
func (s *Server) startSession(c *fiber.Ctx, a auth.Account) {
	c.Locals(localSession, &session{
		UserID:  a.Principal.UserID,
		OrgID:   a.Principal.OrgID,
		Version: a.SessionVersion,
		CSRF:    newToken(),
		Created: s.sessions.now().Unix(),
	})
	s.saveSession(c)
}

// endSession replaces the request's session with a new anonymous one
// carrying the given flash messages.
func (s *Server) endSession(c *fiber.Ctx, flashes ...views.Flash) {
	c.Locals(localSession, &session{CSRF: newToken(), Created: s.sessions.now().Unix(), Flashes: flashes})
	s.saveSession(c)
}

// flash adds a one-time message for the next page.
func (s *Server) flash(c *fiber.Ctx, kind, message string) {
	sess := s.session(c)
	sess.Flashes = append(sess.Flashes, views.Flash{Kind: kind, Message: message})
	s.saveSession(c)
}

// takeFlashes returns the session's flash messages and removes them.
func (s *Server) takeFlashes(c *fiber.Ctx) []views.Flash {
	sess := s.session(c)
	if len(sess.Flashes) == 0 {
		return nil
	}
	f := sess.Flashes
	sess.Flashes = nil
	s.saveSession(c)
	return f
}

// newToken returns 32 random bytes, base64url-encoded.
func newToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
