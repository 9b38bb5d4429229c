package app

import "context"

// Role is a member's role within an org.
type Role string

// Roles within an org.
const (
	RoleAdmin  Role = "admin"
	RoleMember Role = "member"
)

// Principal is who is acting: a signed-in user within one org. Every
// tenant-scoped service call takes the org from here and nowhere else.
type Principal struct {
	UserID  string
	OrgID   string
	OrgName string
	Email   string
	Role    Role
}

// IsAdmin reports whether the principal may change the org's credentials.
func (p Principal) IsAdmin() bool { return p.Role == RoleAdmin }

type principalKey struct{}

// WithPrincipal returns a context carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the principal in ctx, if any.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok && p.OrgID != ""
}
