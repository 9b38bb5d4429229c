// Package team is an org's members and invitations: listing them (any
// member), inviting by e-mail, revoking an invitation, changing a member's
// role and removing a member (admins only). The store re-checks under the
// org's lock that the actor is an admin and that the org keeps one, and
// audits every change in the change's own transaction.
//
// Errors: a member changing the team is EForbidden; bad input EValidation
// with a message per field; an unknown invitation or member (another org's
// included) ENotFound; an address that already has an account EEmailTaken;
// a change that would leave no admin ELastAdmin; the store failing
// EInternal.
package team

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"byoc/app"
	"byoc/app/auth"
	"byoc/app/mail"
	"byoc/app/paths"
)

// InviteTTL is how long an invitation link works.
const InviteTTL = 7 * 24 * time.Hour

// Store is what the service needs from the database (db.DB implements it).
type Store interface {
	Team(ctx context.Context, p app.Principal) ([]app.Member, []app.Invite, error)
	CreateInvite(ctx context.Context, p app.Principal, email string, role app.Role, tokenHash string, expiresAt time.Time) (app.Invite, error)
	RevokeInvite(ctx context.Context, p app.Principal, inviteID string) error
	SetMemberRole(ctx context.Context, p app.Principal, userID string, role app.Role) (app.Member, error)
	RemoveMember(ctx context.Context, p app.Principal, userID string) (app.Member, error)
	EmailHasAccount(ctx context.Context, email string) (bool, error)
	// BumpSessionVersion ends every session and token of a user.
	BumpSessionVersion(ctx context.Context, userID string) error
}

// Options tunes New.
type Options struct {
	// PublicURL is where invitation links point.
	PublicURL string
	Logger    *slog.Logger
	Now       func() time.Time
}

// Service manages teams. It is safe for concurrent use.
type Service struct {
	store     Store
	mailer    mail.Mailer
	publicURL string
	log       *slog.Logger
	now       func() time.Time
}

// New returns the team service; mailer sends the invitations.
func New(store Store, mailer mail.Mailer, o Options) *Service {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Service{store: store, mailer: mailer, publicURL: strings.TrimRight(o.PublicURL, "/"), log: o.Logger, now: o.Now}
}

// Team is an org's members and pending invitations.
type Team struct {
	Members []app.Member
	Invites []app.Invite
}

// Team returns p's org's team; every member may read it.
func (s *Service) Team(ctx context.Context, p app.Principal) (Team, error) {
	m, in, err := s.store.Team(ctx, p)
	if err != nil {
		return Team{}, err
	}
	return Team{Members: m, Invites: in}, nil
}

// Invited is the outcome of an invitation: the invitation, its link (for
// the admin to share when it could not be mailed) and whether it was
// mailed, with the reason when it was not.
type Invited struct {
	Invite  app.Invite
	URL     string
	Emailed bool
	// MailProblem says why the link was not mailed ("" when it was).
	MailProblem string
}

// Invite invites email (field "email") to p's org with role (field
// "role") and mails the link. The invitation stands even when the mail
// cannot be sent: Invited says so and carries the link.
func (s *Service) Invite(ctx context.Context, p app.Principal, email, role string) (Invited, error) {
	if !p.IsAdmin() {
		return Invited{}, errOnlyAdmins()
	}
	fields := map[string]string{}
	addr, err := auth.ParseEmail(email)
	if err != nil {
		for k, v := range app.ErrorFields(err) {
			fields[k] = v
		}
	}
	r, err := app.ParseRole(role)
	if err != nil {
		for k, v := range app.ErrorFields(err) {
			fields[k] = v
		}
	}
	if err := app.ValidationError(fields); err != nil {
		return Invited{}, err
	}
	taken, err := s.store.EmailHasAccount(ctx, addr)
	if err != nil {
		return Invited{}, err
	}
	if taken {
		return Invited{}, &app.Error{Code: app.EEmailTaken, Message: "This address already has a BYOC account; an account belongs to one organization.",
			Fields: map[string]string{"email": "This address already has a BYOC account."}}
	}
	token := app.NewLinkToken()
	in, err := s.store.CreateInvite(ctx, p, addr, r, app.LinkTokenHash(token), s.now().Add(InviteTTL))
	if err != nil {
		return Invited{}, err
	}
	out := Invited{Invite: in, URL: s.publicURL + paths.Invite(token)}
	if !s.mailer.Enabled() {
		out.MailProblem = "This server is not set up to send e-mail: share the link with " + addr + " yourself."
		return out, nil
	}
	msg := mail.InviteMessage(addr, p.OrgName, p.Email, string(r), out.URL, in.ExpiresAt)
	if err := s.mailer.Send(ctx, msg); err != nil {
		s.log.Warn("invitation e-mail not sent", "org_id", p.OrgID, "invite_id", in.ID, "err", app.ErrorMessage(err))
		out.MailProblem = "The e-mail could not be sent (" + app.ErrorMessage(err) + "): share the link with " + addr + " yourself."
		return out, nil
	}
	out.Emailed = true
	return out, nil
}

// RevokeInvite withdraws a pending invitation of p's org.
func (s *Service) RevokeInvite(ctx context.Context, p app.Principal, inviteID string) error {
	if !p.IsAdmin() {
		return errOnlyAdmins()
	}
	return s.store.RevokeInvite(ctx, p, inviteID)
}

// SetRole gives a member of p's org role (field "role").
func (s *Service) SetRole(ctx context.Context, p app.Principal, userID, role string) (app.Member, error) {
	if !p.IsAdmin() {
		return app.Member{}, errOnlyAdmins()
	}
	r, err := app.ParseRole(role)
	if err != nil {
		return app.Member{}, err
	}
	return s.store.SetMemberRole(ctx, p, userID, r)
}

// Remove removes a member from p's org and ends their sessions and tokens
// at once.
func (s *Service) Remove(ctx context.Context, p app.Principal, userID string) (app.Member, error) {
	if !p.IsAdmin() {
		return app.Member{}, errOnlyAdmins()
	}
	m, err := s.store.RemoveMember(ctx, p, userID)
	if err != nil {
		return app.Member{}, err
	}
	// The membership is gone, which already ends every session in the
	// org; raising the version also ends them for anything that keeps a
	// sign-in without looking the membership up.
	if err := s.store.BumpSessionVersion(ctx, userID); err != nil {
		s.log.Error("removed member's sessions not ended", "org_id", p.OrgID, "user_id", userID, "err", err)
	}
	return m, nil
}

func errOnlyAdmins() error { return app.Errorf(app.EForbidden, "Only an admin can change the team.") }
