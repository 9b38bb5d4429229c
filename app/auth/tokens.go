package auth

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"byoc/app"
)

// Token defaults.
const (
	// DefaultIssuer is the iss claim when TokenOptions.Issuer is empty.
	DefaultIssuer = "byoc"
	// DefaultTokenTTL is how long an issued token stays valid.
	DefaultTokenTTL = time.Hour
	// DefaultLeeway is the clock skew tolerated on exp, nbf and iat.
	DefaultLeeway = 30 * time.Second
	// Audience is the aud claim tokens carry and must carry, as Supabase
	// names signed-in users.
	Audience = "authenticated"
	// PostgresRole is the role claim: the PostgreSQL role a token's requests
	// run as. It is not the org role (admin or member).
	PostgresRole = "authenticated"
	// MinSecretBytes is the shortest JWT secret NewTokens accepts.
	MinSecretBytes = 32
	// MaxUnversionedTokenAge is how long after its iat a token without a
	// session version (issued elsewhere, Supabase style) is accepted,
	// whatever its exp says: logout cannot revoke such a token, so it must
	// not live long. It is Supabase's default token lifetime.
	MaxUnversionedTokenAge = time.Hour
)

// TokenOptions tunes NewTokens. The zero value gives the defaults.
type TokenOptions struct {
	// Issuer is the iss claim written and required (PUBLIC_URL works well;
	// empty: DefaultIssuer).
	Issuer string
	// TTL is the lifetime of issued tokens (0: DefaultTokenTTL).
	TTL time.Duration
	// Leeway is the tolerated clock skew (0: DefaultLeeway).
	Leeway time.Duration
	// Now is the clock (nil: time.Now); tests set it.
	Now func() time.Time
}

// maxVerified bounds how many verified tokens Tokens remembers (about
// 0.5 KB each).
const maxVerified = 4096

// Tokens issues and checks HS256 JWTs signed with JWT_SECRET. It is safe for
// concurrent use.
//
// It remembers the tokens it verified, by their exact text, with the span of
// time in which the checks that depend on the clock (exp, nbf, iat, the age
// of a token without a session version) pass: a token seen again within
// that span passes Parse without its signature and claims being checked
// again, and outside it is checked in full (and refused when expired).
type Tokens struct {
	secret []byte
	opts   TokenOptions
	parser *jwt.Parser

	mu       sync.RWMutex
	verified map[string]verifiedToken
}

// verifiedToken is a token that passed every check, and the span of time in
// which it passes them.
type verifiedToken struct {
	claims Claims
	span   validSpan
}

// NewTokens returns a token issuer and checker for secret, which must be at
// least MinSecretBytes long.
func NewTokens(secret []byte, opts TokenOptions) (*Tokens, error) {
	if len(secret) < MinSecretBytes {
		return nil, fmt.Errorf("auth: the JWT secret must be at least %d bytes", MinSecretBytes)
	}
	if opts.Issuer == "" {
		opts.Issuer = DefaultIssuer
	}
	if opts.TTL <= 0 {
		opts.TTL = DefaultTokenTTL
	}
	if opts.Leeway <= 0 {
		opts.Leeway = DefaultLeeway
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	parser := jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithAudience(Audience),
		jwt.WithIssuer(opts.Issuer),
		jwt.WithLeeway(opts.Leeway),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(opts.Now),
	)
	return &Tokens{secret: append([]byte(nil), secret...), opts: opts, parser: parser,
		verified: map[string]verifiedToken{}}, nil
}

// Claims is what a valid token says. SessionVersion is 0 when the token
// carries none (issued elsewhere).
type Claims struct {
	UserID         string
	OrgID          string
	Email          string
	SessionVersion int
	ExpiresAt      time.Time
}

// jwtClaims is the token body: the registered claims, Supabase's role and
// org claims (org_id at the top level or in app_metadata), the email and
// this package's session version.
type jwtClaims struct {
	jwt.RegisteredClaims
	Role           string       `json:"role"`
	OrgID          string       `json:"org_id,omitempty"`
	AppMetadata    *appMetadata `json:"app_metadata,omitempty"`
	Email          string       `json:"email,omitempty"`
	SessionVersion int          `json:"session_version,omitempty"`
}

type appMetadata struct {
	OrgID string `json:"org_id,omitempty"`
}

// Issue returns a token for p, bound to sessionVersion.
func (t *Tokens) Issue(p app.Principal, sessionVersion int) (Token, error) {
	now := t.opts.Now().Truncate(time.Second)
	exp := now.Add(t.opts.TTL)
	claims := jwtClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    t.opts.Issuer,
			Subject:   p.UserID,
			Audience:  jwt.ClaimStrings{Audience},
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(exp),
		},
		Role:           PostgresRole,
		OrgID:          p.OrgID,
		Email:          p.Email,
		SessionVersion: sessionVersion,
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(t.secret)
	if err != nil {
		return Token{}, app.Internal(fmt.Errorf("auth: sign token: %w", err))
	}
	return Token{Value: s, ExpiresAt: exp}, nil
}

// Parse checks a token and returns its claims. It accepts only HS256 tokens
// signed with the secret, with an exp (not passed, give or take the leeway),
// aud "authenticated", the configured iss, role "authenticated", a UUID sub
// and a UUID org_id (top level, or in app_metadata). A token without a
// session version (every token Issue writes has one) must also carry an iat
// at most MaxUnversionedTokenAge ago (give or take the leeway). Any other
// token is EUnauthorized.
func (t *Tokens) Parse(token string) (Claims, error) {
	now := t.opts.Now()
	t.mu.RLock()
	v, ok := t.verified[token]
	t.mu.RUnlock()
	if ok && v.span.holds(now) {
		return v.claims, nil
	}
	claims, span, err := t.verify(token)
	if err != nil {
		return Claims{}, err
	}
	// The text is copied before it becomes a key: the caller's string may
	// share memory with a request buffer that the server reuses for the
	// next request (Fiber's strings do), which would turn this key into
	// another token's text while it stays mapped to these claims.
	t.remember(strings.Clone(token), verifiedToken{claims: claims, span: span}, now)
	return claims, nil
}

// remember keeps v for token. When maxVerified tokens are remembered, it
// forgets the ones that no longer pass, and everything when that is not
// enough.
func (t *Tokens) remember(token string, v verifiedToken, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.verified) >= maxVerified {
		for k, old := range t.verified {
			if !now.Before(old.span.until) {
				delete(t.verified, k)
			}
		}
		if len(t.verified) >= maxVerified {
			clear(t.verified)
		}
	}
	// The map keeps its own copy of the key: a caller's token may share
	// memory that is reused afterwards (the HTTP server's request buffer),
	// and a key that changes under the map would answer for another token.
	t.verified[strings.Clone(token)] = v
}

// validSpan is when a token's clock-dependent checks pass: from its iat or
// nbf, whichever is later, until its exp (or, without a session version,
// MaxUnversionedTokenAge after its iat, if that comes first), each widened
// by the leeway.
type validSpan struct{ from, until time.Time }

func (s validSpan) holds(now time.Time) bool { return !now.Before(s.from) && now.Before(s.until) }

// verify checks token in full, as Parse promises, and returns its claims and
// the span in which they stay valid.
func (t *Tokens) verify(token string) (Claims, validSpan, error) {
	var c jwtClaims
	_, err := t.parser.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return t.secret, nil })
	if err != nil {
		return Claims{}, validSpan{}, errBadToken(err)
	}
	if c.Role != PostgresRole {
		return Claims{}, validSpan{}, errBadToken(fmt.Errorf("role claim %q", c.Role))
	}
	org := c.OrgID
	if org == "" && c.AppMetadata != nil {
		org = c.AppMetadata.OrgID
	}
	if !app.IsUUID(c.Subject) {
		return Claims{}, validSpan{}, errBadToken(errors.New("sub is not a UUID"))
	}
	if !app.IsUUID(org) {
		return Claims{}, validSpan{}, errBadToken(errors.New("org_id is missing or not a UUID"))
	}
	if c.SessionVersion < 0 {
		return Claims{}, validSpan{}, errBadToken(errors.New("negative session version"))
	}
	if c.SessionVersion == 0 {
		switch {
		case c.IssuedAt == nil:
			return Claims{}, validSpan{}, errBadToken(errors.New("no session version and no iat"))
		case t.opts.Now().After(c.IssuedAt.Add(MaxUnversionedTokenAge + t.opts.Leeway)):
			return Claims{}, validSpan{}, errBadToken(errors.New("no session version and issued too long ago"))
		}
	}
	leeway := t.opts.Leeway
	span := validSpan{until: c.ExpiresAt.Add(leeway)}
	if c.IssuedAt != nil {
		span.from = c.IssuedAt.Add(-leeway)
		if c.SessionVersion == 0 {
			span.until = minTime(span.until, c.IssuedAt.Add(MaxUnversionedTokenAge+leeway))
		}
	}
	if c.NotBefore != nil && c.NotBefore.Add(-leeway).After(span.from) {
		span.from = c.NotBefore.Add(-leeway)
	}
	return Claims{
		UserID:         strings.ToLower(c.Subject),
		OrgID:          strings.ToLower(org),
		Email:          c.Email,
		SessionVersion: c.SessionVersion,
		ExpiresAt:      c.ExpiresAt.Time,
	}, span, nil
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func errBadToken(cause error) error {
	return &app.Error{Code: app.EUnauthorized, Message: "The access token is invalid or has expired.", Cause: cause}
}
