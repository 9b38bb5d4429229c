package views_test

import (
	"strings"
	"testing"
	"time"

	"byoc/app"
	"byoc/views"
)

func TestTeamFragmentByRole(t *testing.T) {
	now := time.Date(2030, 1, 2, 0, 0, 0, 0, time.UTC)
	v := views.TeamView{
		OrgName: "Acme <&> Co",
		Me:      "u1",
		Members: []app.Member{
			{UserID: "u1", Email: "ann@example.com", Role: app.RoleAdmin, Joined: now},
			{UserID: "u2", Email: "bob@example.com", Role: app.RoleMember, Joined: now},
		},
		Invites: []app.Invite{{ID: "i1", Email: "cat@example.com", Role: app.RoleMember, ExpiresAt: now.Add(7 * 24 * time.Hour)}},
		Now:     now,
	}

	t.Run("admin", func(t *testing.T) {
		v := v
		v.CanManage = true
		d := render(t, views.TeamFragment(v))
		if testid(d, "invite-form").Length() != 1 || testid(d, "make-admin-bob@example.com").Length() != 1 ||
			testid(d, "make-member-ann@example.com").Length() != 1 || testid(d, "revoke-cat@example.com").Length() != 1 {
			t.Fatal("an admin misses a control")
		}
		if p, _ := testid(d, "remove-bob@example.com").Attr("hx-delete"); p != "/api/team/members/u2" {
			t.Fatalf("remove goes to %q", p)
		}
		if !strings.Contains(testid(d, "member-ann@example.com").Text(), "(you)") {
			t.Fatal("the signed-in user's row does not say so")
		}
	})
	t.Run("member", func(t *testing.T) {
		d := render(t, views.TeamFragment(v))
		if testid(d, "invite-form").Length() != 0 || d.Find("[hx-patch], [hx-delete], [hx-post], form").Length() != 0 {
			t.Fatal("a member sees controls that change the team")
		}
		if testid(d, "member-role-bob@example.com").Text() != "Member" || testid(d, "invite-cat@example.com").Length() != 1 {
			t.Fatal("a member does not see the team")
		}
	})
	t.Run("an invitation that was not mailed shows its link", func(t *testing.T) {
		v := v
		v.CanManage = true
		v.Invited = &views.InvitedLink{Email: "dan@example.com", URL: "https://byoc.example.com/invite/tok", Problem: "This server is not set up to send e-mail."}
		d := render(t, views.TeamFragment(v))
		if testid(d, "invite-url").Text() != "https://byoc.example.com/invite/tok" || testid(d, "invited-problem").Length() != 1 {
			t.Fatal("the link or the problem is missing")
		}
	})
}

func TestOutboxPageLinks(t *testing.T) {
	d := render(t, views.OutboxPage([]views.OutboxMessage{{To: "a@example.com", Subject: "S",
		Text: "Go here:\nhttps://byoc.example.com/reset/abc\n\nor javascript:alert(1)"}}))
	links := testid(d, "outbox-link")
	if links.Length() != 1 {
		t.Fatalf("%d links, want 1", links.Length())
	}
	if href, _ := links.Attr("href"); href != "https://byoc.example.com/reset/abc" {
		t.Fatalf("link %q", href)
	}
}
