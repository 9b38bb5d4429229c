package views

import (
	"regexp"
	"time"

	"byoc/app"
)

// TeamView is the team settings page's view model: the members, the
// pending invitations and, for admins, the invitation form and the
// controls that change roles, remove members and revoke invitations.
type TeamView struct {
	OrgName   string
	CanManage bool
	// Me is the signed-in user's id (their row says "you").
	Me      string
	Members []app.Member
	Invites []app.Invite
	Form    InviteForm
	// Invited is the outcome of the invitation just made, or nil.
	Invited *InvitedLink
	// Result is the outcome of the change that re-rendered the team, or
	// nil.
	Result *Notice
	Now    time.Time
}

// InviteForm is the invitation form's state.
type InviteForm struct {
	Email   string
	Role    string
	Message string
	Errors  FieldErrors
}

// InvitedLink is an invitation just made: its link, and whether it was
// mailed (else Problem says why, and the admin shares the link).
type InvitedLink struct {
	Email     string
	URL       string
	Emailed   bool
	Problem   string
	ExpiresAt time.Time
}

// JoinForm is the invitation page's form: the invitee chooses a password.
type JoinForm struct {
	CSRFToken string
	Token     string
	Email     string
	OrgName   string
	Role      string
	Message   string
	Errors    FieldErrors
}

// ForgotForm asks for a password reset link; Sent shows that the request
// was taken (whether or not the address has an account).
type ForgotForm struct {
	CSRFToken string
	Email     string
	Sent      bool
	Message   string
	Errors    FieldErrors
}

// ResetForm is the password reset page's form.
type ResetForm struct {
	CSRFToken string
	Token     string
	Email     string
	Message   string
	Errors    FieldErrors
}

// AccountView is the account settings page: the password change form and
// the sign-out-everywhere button.
type AccountView struct {
	CSRFToken string
	Email     string
	// Admin shows the admins' settings tabs.
	Admin    bool
	Password PasswordForm
}

// PasswordForm is the password change form's state; Done shows it worked.
type PasswordForm struct {
	CSRFToken string
	Done      bool
	Message   string
	Errors    FieldErrors
}

// LinkProblem is the page of a link that no longer works.
type LinkProblem struct {
	Title   string
	Message string
}

// OutboxMessage is one message of the development outbox.
type OutboxMessage struct {
	To      string
	Subject string
	Text    string
	At      time.Time
}

var linkPattern = regexp.MustCompile(`https?://[^\s<>"]+`)

// Links are the web addresses in the message's text.
func (m OutboxMessage) Links() []string { return linkPattern.FindAllString(m.Text, -1) }

func roleLabel(r app.Role) string {
	if r == app.RoleAdmin {
		return "Admin"
	}
	return "Member"
}

func shortDate(t time.Time) string { return t.UTC().Format("2 Jan 2006") }
