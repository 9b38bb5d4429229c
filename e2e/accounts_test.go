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

// signUp creates an org through the signup page and returns its admin's
// email and password; the page ends on the dashboard.
func signUp(t *testing.T, page playwright.Page, orgName string) (email, password string) {
	t.Helper()
	email = fmt.Sprintf("admin-%d@example.com", time.Now().UnixNano())
	password = "correct horse battery staple"
	if _, err := page.Goto("/signup"); err != nil {
		t.Fatal(err)
	}
	must(t, page.GetByLabel("Organization name").Fill(orgName))
	must(t, page.GetByLabel("Work email").Fill(email))
	must(t, page.GetByLabel("Password").Fill(password))
	must(t, page.GetByTestId("signup-submit").Click())
	must(t, page.WaitForURL("**/dashboard/integrations"))
	return email, password
}

func TestSignupLandsOnDashboardAndLogoutEndsTheSession(t *testing.T) {
	page := newPage(t)
	email, password := signUp(t, page, "Acme Dental")

	expectText(t, page.GetByTestId("org-name"), "Acme Dental")
	expectText(t, page.GetByTestId("user-email"), email)

	must(t, page.GetByTestId("logout").Click())
	must(t, page.WaitForURL("**/login**"))

	// Signed out: the dashboard sends the browser back to the login page.
	if _, err := page.Goto("/dashboard/integrations"); err != nil {
		t.Fatal(err)
	}
	must(t, page.WaitForURL("**/login**"))

	// Sign in again.
	must(t, page.GetByLabel("Email").Fill(email))
	must(t, page.GetByLabel("Password").Fill(password))
	must(t, page.GetByTestId("login-submit").Click())
	must(t, page.WaitForURL("**/dashboard/integrations"))
	expectText(t, page.GetByTestId("org-name"), "Acme Dental")

	apptest.AssertNoSecret(t, "the server log", serverLog.String(), password)
}

func TestLoginAndSignupShowErrorsInline(t *testing.T) {
	page := newPage(t)
	email, _ := signUp(t, page, "Wrong Password Clinic")
	must(t, page.GetByTestId("logout").Click())
	must(t, page.WaitForURL("**/login**"))

	must(t, page.GetByLabel("Email").Fill(email))
	must(t, page.GetByLabel("Password").Fill("not the right password"))
	must(t, page.GetByTestId("login-submit").Click())
	expectText(t, page.GetByTestId("form-error"), "email or password is incorrect")
	if !strings.Contains(page.URL(), "/login") {
		t.Fatalf("after a wrong password the browser is at %s", page.URL())
	}

	// Signup with a short password and a taken email: messages under the fields.
	if _, err := page.Goto("/signup"); err != nil {
		t.Fatal(err)
	}
	must(t, page.GetByLabel("Organization name").Fill("Second Org"))
	must(t, page.GetByLabel("Work email").Fill(email))
	must(t, page.GetByLabel("Password").Fill("short"))
	must(t, page.GetByTestId("signup-submit").Click())
	expectText(t, page.GetByTestId("password-error"), "12 characters")
	v, err := page.GetByLabel("Work email").InputValue()
	if err != nil || v != email {
		t.Fatalf("the form lost the entered email: %q, %v", v, err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// expectText waits until the locator is visible and contains want.
func expectText(t *testing.T, l playwright.Locator, want string) {
	t.Helper()
	if err := l.WaitFor(playwright.LocatorWaitForOptions{State: playwright.WaitForSelectorStateVisible}); err != nil {
		t.Fatalf("waiting for an element to contain %q: %v", want, err)
	}
	got, err := l.TextContent()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(got, want) {
		t.Fatalf("text %q does not contain %q", got, want)
	}
}
