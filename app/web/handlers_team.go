package web

import (
	"net/http"
	"time"

	"github.com/a-h/templ"
	"github.com/gofiber/fiber/v2"

	"byoc/app"
	"byoc/app/auth"
	"byoc/app/paths"
	"byoc/app/team"
	"byoc/views"
)

// The team: GET /settings/team and GET /api/team list the members and
// pending invitations (any member); inviting, revoking, changing a role
// and removing a member are admins' (the service refuses others with
// EForbidden). Each answers JSON to API clients and the team fragment to
// htmx; a refusal the admin can act on (bad input, an address with an
// account, an unknown member, the last admin) is shown in the fragment,
// with the real status in X-Byoc-Status.

// teamPage answers the team: the settings page, its fragment for htmx and
// teamData for JSON clients.
func (s *Server) teamPage(c *fiber.Ctx) error {
	a, _ := account(c)
	t, err := s.deps.Team.Team(c.UserContext(), a.Principal)
	if err != nil {
		return err
	}
	v := s.teamView(a, t)
	return s.reply(c, http.StatusOK, answer{Data: newTeamData(t),
		view: view{Title: "Team", Page: views.TeamPage(v), Fragment: views.TeamFragment(v)}})
}

// inviteInput is the body of POST /api/team/invites.
type inviteInput struct {
	Email string `json:"email" form:"email"`
	Role  string `json:"role" form:"role"`
}

// invite invites an address to the org and mails the link (201
// inviteData). The link is in the answer too, for an admin to share when
// the mail could not be sent (mailProblem says why).
func (s *Server) invite(c *fiber.Ctx) error {
	a, _ := account(c)
	var in inviteInput
	err := bind(c, &in)
	var res team.Invited
	if err == nil {
		res, err = s.deps.Team.Invite(c.UserContext(), a.Principal, in.Email, in.Role)
	}
	if err != nil {
		return s.teamRefused(c, a, err, views.InviteForm{Email: in.Email, Role: in.Role,
			Message: app.ErrorMessage(err), Errors: app.ErrorFields(err)})
	}
	data := inviteData{InviteID: res.Invite.ID, InviteURL: res.URL, ExpiresAt: res.Invite.ExpiresAt.UTC(),
		Email: res.Invite.Email, Role: res.Invite.Role, Emailed: res.Emailed, MailProblem: res.MailProblem}
	msg := "Invitation sent to " + res.Invite.Email + "."
	if !res.Emailed {
		msg = res.MailProblem + " Link: " + res.URL
	}
	fragment, err := s.teamFragment(c, a, func(v *views.TeamView) {
		v.Invited = &views.InvitedLink{Email: res.Invite.Email, URL: res.URL, Emailed: res.Emailed,
			Problem: res.MailProblem, ExpiresAt: res.Invite.ExpiresAt}
	})
	if err != nil {
		return err
	}
	return s.changed(c, http.StatusCreated, data, fragment, paths.Team, views.FlashSuccess, msg)
}

// revokeInvite withdraws a pending invitation (DELETE /api/team/invites/:id).
func (s *Server) revokeInvite(c *fiber.Ctx) error {
	a, _ := account(c)
	id := c.Params(paths.IDParam)
	if err := s.deps.Team.RevokeInvite(c.UserContext(), a.Principal, id); err != nil {
		return s.teamRefused(c, a, err, views.InviteForm{})
	}
	return s.teamChanged(c, a, map[string]any{"inviteId": id, "revoked": true}, "Invitation revoked.")
}

// roleInput is the body of PATCH /api/team/members/:id.
type roleInput struct {
	Role string `json:"role" form:"role"`
}

// setMemberRole changes a member's role (PATCH /api/team/members/:id).
func (s *Server) setMemberRole(c *fiber.Ctx) error {
	a, _ := account(c)
	var in roleInput
	err := bind(c, &in)
	var m app.Member
	if err == nil {
		m, err = s.deps.Team.SetRole(c.UserContext(), a.Principal, c.Params(paths.IDParam), in.Role)
	}
	if err != nil {
		return s.teamRefused(c, a, err, views.InviteForm{})
	}
	if m.UserID == a.Principal.UserID && m.Role != app.RoleAdmin && negotiate(c) != formatJSON {
		// An admin who made themself a member sees the team read-only.
		s.flash(c, views.FlashSuccess, "You are now a member of "+a.OrgName+".")
		return redirect(c, paths.Team)
	}
	return s.teamChanged(c, a, newMemberData(m), m.Email+" is now "+roleName(m.Role)+".")
}

// removeMember removes a member and ends their sessions and tokens
// (DELETE /api/team/members/:id). An admin who removed themself is signed
// out.
func (s *Server) removeMember(c *fiber.Ctx) error {
	a, _ := account(c)
	m, err := s.deps.Team.Remove(c.UserContext(), a.Principal, c.Params(paths.IDParam))
	if err != nil {
		return s.teamRefused(c, a, err, views.InviteForm{})
	}
	data := map[string]any{"userId": m.UserID, "removed": true}
	if m.UserID == a.Principal.UserID {
		if negotiate(c) == formatJSON {
			return sendJSON(c, http.StatusOK, data)
		}
		s.endSession(c, views.Flash{Kind: views.FlashInfo, Message: "You left " + a.OrgName + "."})
		return redirect(c, paths.Login)
	}
	return s.teamChanged(c, a, data, m.Email+" was removed and signed out.")
}

// teamChanged answers a successful team change: data to API clients, the
// team with the outcome to htmx, the team page with a flash otherwise.
func (s *Server) teamChanged(c *fiber.Ctx, a auth.Account, data any, msg string) error {
	fragment, err := s.teamFragment(c, a, func(v *views.TeamView) {
		v.Result = &views.Notice{Kind: views.FlashSuccess, Message: msg}
	})
	if err != nil {
		return err
	}
	return s.changed(c, http.StatusOK, data, fragment, paths.Team, views.FlashSuccess, msg)
}

// teamRefused answers a refused team change. API clients, refusals the
// admin cannot act on and plain pages go to the error handler; htmx gets
// the team again with the reason (and the invitation form with its
// messages).
func (s *Server) teamRefused(c *fiber.Ctx, a auth.Account, err error, form views.InviteForm) error {
	code := app.ErrorCode(err)
	if negotiate(c) != formatFragment {
		return err
	}
	switch code {
	case app.EValidation, app.EEmailTaken, app.ENotFound, app.ELastAdmin:
	default:
		return err
	}
	fragment, ferr := s.teamFragment(c, a, func(v *views.TeamView) {
		if form.Message != "" || len(form.Errors) > 0 {
			v.Form = form
			return
		}
		v.Result = &views.Notice{Kind: views.FlashError, Message: app.ErrorMessage(err)}
	})
	if ferr != nil {
		return err
	}
	if fragment == nil {
		return err
	}
	return renderHTML(c, statusOf(code), fragment)
}

// teamFragment reads the team again (after a change) and renders its
// fragment for htmx, changed by edit; other formats need none (nil).
func (s *Server) teamFragment(c *fiber.Ctx, a auth.Account, edit func(*views.TeamView)) (templ.Component, error) {
	if negotiate(c) != formatFragment {
		return nil, nil
	}
	t, err := s.deps.Team.Team(c.UserContext(), a.Principal)
	if err != nil {
		return nil, err
	}
	v := s.teamView(a, t)
	edit(&v)
	return views.TeamFragment(v), nil
}

func (s *Server) teamView(a auth.Account, t team.Team) views.TeamView {
	return views.TeamView{OrgName: a.OrgName, CanManage: a.Principal.IsAdmin(), Me: a.Principal.UserID,
		Members: t.Members, Invites: t.Invites, Now: time.Now()}
}

func roleName(r app.Role) string {
	if r == app.RoleAdmin {
		return "an admin"
	}
	return "a member"
}

// teamData is the JSON answer of GET /api/team.
type teamData struct {
	Members []memberData `json:"members"`
	Invites []inviteItem `json:"invites"`
}

// memberData is one member in JSON.
type memberData struct {
	UserID string    `json:"userId"`
	Email  string    `json:"email"`
	Role   app.Role  `json:"role"`
	Joined time.Time `json:"joined"`
}

func newMemberData(m app.Member) memberData {
	return memberData{UserID: m.UserID, Email: m.Email, Role: m.Role, Joined: m.Joined.UTC()}
}

// inviteItem is one pending invitation in JSON (never its link).
type inviteItem struct {
	InviteID  string    `json:"inviteId"`
	Email     string    `json:"email"`
	Role      app.Role  `json:"role"`
	InvitedBy string    `json:"invitedBy,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
	ExpiresAt time.Time `json:"expiresAt"`
}

func newTeamData(t team.Team) teamData {
	out := teamData{Members: []memberData{}, Invites: []inviteItem{}}
	for _, m := range t.Members {
		out.Members = append(out.Members, newMemberData(m))
	}
	for _, in := range t.Invites {
		out.Invites = append(out.Invites, inviteItem{InviteID: in.ID, Email: in.Email, Role: in.Role, InvitedBy: in.InvitedBy,
			CreatedAt: in.CreatedAt.UTC(), ExpiresAt: in.ExpiresAt.UTC()})
	}
	return out
}

// inviteData is the JSON answer of an invitation.
type inviteData struct {
	InviteID    string    `json:"inviteId"`
	InviteURL   string    `json:"inviteUrl"`
	ExpiresAt   time.Time `json:"expiresAt"`
	Email       string    `json:"email"`
	Role        app.Role  `json:"role"`
	Emailed     bool      `json:"emailed"`
	MailProblem string    `json:"mailProblem,omitempty"`
}
