package app

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"time"
)

// Member is one user of an org as the team page lists them.
type Member struct {
	UserID string
	Email  string
	Role   Role
	Joined time.Time
}

// Invite is a pending invitation to join an org. Its link's token is never
// stored: only its digest (LinkTokenHash).
type Invite struct {
	ID        string
	OrgID     string
	Email     string
	Role      Role
	InvitedBy string // user id; "" when that user is gone
	CreatedAt time.Time
	ExpiresAt time.Time
}

// ParseRole returns the role named s ("admin" or "member"), or an
// EValidation error for the field "role".
func ParseRole(s string) (Role, error) {
	switch Role(s) {
	case RoleAdmin, RoleMember:
		return Role(s), nil
	}
	return "", ValidationError(map[string]string{"role": `Choose "admin" or "member".`})
}

// Audit actions of team and account changes (AuditEntry.Action).
const (
	AuditInviteCreate   = "team.invite"
	AuditInviteRevoke   = "team.invite_revoke"
	AuditInviteAccept   = "team.join"
	AuditMemberRole     = "team.role_change"
	AuditMemberRemove   = "team.remove"
	AuditPasswordChange = "account.password_change"
	AuditPasswordReset  = "account.password_reset"
)

// NewLinkToken returns a fresh token for a link sent by e-mail (an
// invitation, a password reset): 32 random bytes, base64url, 43 characters.
func NewLinkToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// LinkTokenHash is what is stored of a link token: its SHA-256, in hex. A
// token of 256 random bits needs no salt or slow hash.
func LinkTokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// IsLinkToken reports whether s has the shape NewLinkToken gives, so that
// anything else is refused without a lookup.
func IsLinkToken(s string) bool {
	if len(s) != 43 {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(s)
	return err == nil
}
