//go:build e2e

package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/playwright-community/playwright-go"

	"byoc/app/apptest"
)

// outboxLink opens the development outbox and returns the first link of
// the newest message to to.
func outboxLink(t *testing.T, page playwright.Page, to string) string {
	t.Helper()
	if _, err := page.Goto("/dev/outbox"); err != nil {
		t.Fatal(err)
	}
	msg := page.Locator(fmt.Sprintf(`[data-testid="outbox-message"][data-to=%q]`, to)).First()
	link, err := msg.GetByTestId("outbox-link").First().GetAttribute("href")
	if err != nil {
		t.Fatalf("no link in the outbox for %s: %v", to, err)
	}
	return link
}

func TestAdminInvitesAMemberWhoSeesTheDashboardReadOnly(t *testing.T) {
	admin := newPage(t)
	signUp(t, admin, "Invite Clinic")

	must(t, admin.GetByTestId("nav-team").Click())
	must(t, admin.WaitForURL("**/settings/team"))
	invitee := fmt.Sprintf("member-%d@example.com", time.Now().UnixNano())
	must(t, admin.GetByLabel("E-mail").Fill(invitee))
	if _, err := admin.GetByTestId("invite-role-input").SelectOption(playwright.SelectOptionValues{Values: &[]string{"member"}}); err != nil {
		t.Fatal(err)
	}
	must(t, admin.GetByTestId("invite-submit").Click())
	expectText(t, admin.GetByTestId("invited"), "Invitation sent to "+invitee)
	expectText(t, admin.GetByTestId("invite-"+invitee), invitee)

	// The invitee follows the link from the outbox and chooses a password.
	member := newPage(t)
	link := outboxLink(t, member, invitee)
	if _, err := member.Goto(link); err != nil {
		t.Fatal(err)
	}
	password := "a member's own long passphrase"
	must(t, member.GetByLabel("Password").Fill(password))
	must(t, member.GetByTestId("join-submit").Click())
	must(t, member.WaitForURL("**/dashboard/integrations"))
	expectText(t, member.GetByTestId("org-name"), "Invite Clinic")
	expectText(t, member.GetByTestId("member-note"), "only an admin can connect")
	for _, id := range []string{"card-vapi-configure", "card-resend-configure", "card-google_calendar-connect"} {
		if n, err := member.GetByTestId(id).Count(); err != nil || n != 0 {
			t.Fatalf("the member sees %s (%d, %v)", id, n, err)
		}
	}
	if n, err := member.Locator("[hx-post], [hx-delete]").Count(); err != nil || n != 0 {
		t.Fatalf("the member's dashboard has %d controls that change something (%v)", n, err)
	}

	// The admin's team now lists the member, no longer the invitation.
	if _, err := admin.Reload(); err != nil {
		t.Fatal(err)
	}
	expectText(t, admin.GetByTestId("member-role-"+invitee), "Member")
	if n, _ := admin.GetByTestId("invite-" + invitee).Count(); n != 0 {
		t.Fatal("the used invitation is still pending")
	}

	// Promote, then remove the member: they are signed out at once.
	must(t, admin.GetByTestId("make-admin-"+invitee).Click())
	must(t, integExpect.Locator(admin.GetByTestId("member-role-"+invitee)).ToHaveText("Admin"))
	must(t, admin.GetByTestId("remove-"+invitee).Click())
	must(t, admin.GetByTestId("confirm-accept").Click())
	must(t, integExpect.Locator(admin.GetByTestId("team-result")).ToContainText("was removed"))
	if _, err := member.Goto("/dashboard/integrations"); err != nil {
		t.Fatal(err)
	}
	must(t, member.WaitForURL("**/login**"))
	apptest.AssertNoSecret(t, "the server log", serverLog.String(), password)
}

func TestPasswordResetFromTheOutbox(t *testing.T) {
	page := newPage(t)
	email, oldPassword := signUp(t, page, "Forgetful Clinic")
	must(t, page.GetByTestId("logout").Click())
	must(t, page.WaitForURL("**/login**"))

	must(t, page.GetByTestId("forgot-link").Click())
	must(t, page.WaitForURL("**/password-reset"))
	must(t, page.GetByLabel("Email").Fill(email))
	must(t, page.GetByTestId("forgot-submit").Click())
	expectText(t, page.GetByTestId("reset-requested"), "on its way")

	link := outboxLink(t, page, email)
	if _, err := page.Goto(link); err != nil {
		t.Fatal(err)
	}
	newPassword := "a freshly chosen passphrase"
	must(t, page.GetByLabel("New password").Fill(newPassword))
	must(t, page.GetByTestId("reset-submit").Click())
	must(t, page.WaitForURL("**/dashboard/integrations"))
	expectText(t, page.GetByTestId("flash-success"), "Your password is changed")

	// The link worked once (asked outside the page: a 404 document would
	// be a console error).
	res, err := page.Request().Get(link)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := res.Text()
	if res.Status() != 404 || !strings.Contains(body, "not valid") {
		t.Fatalf("the used link: %d", res.Status())
	}

	// The old password no longer signs in; the new one does.
	other := newPage(t)
	if _, err := other.Goto("/login"); err != nil {
		t.Fatal(err)
	}
	must(t, other.GetByLabel("Email").Fill(email))
	must(t, other.GetByLabel("Password").Fill(oldPassword))
	must(t, other.GetByTestId("login-submit").Click())
	expectText(t, other.GetByTestId("form-error"), "email or password is incorrect")
	must(t, other.GetByLabel("Password").Fill(newPassword))
	must(t, other.GetByTestId("login-submit").Click())
	must(t, other.WaitForURL("**/dashboard/integrations"))
	apptest.AssertNoSecret(t, "the server log", serverLog.String(), oldPassword, newPassword)
}
