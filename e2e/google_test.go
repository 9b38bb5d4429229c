//go:build e2e

package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/playwright-community/playwright-go"
)

// The demo server's Google is the sandbox stand-in: its consent page offers
// an editable account email and Allow and Deny buttons, and the server's
// Google client is the stand-in's, so the Google Calendar card offers
// Connect.

// googleConsent clicks Connect on the Google Calendar card and waits for
// the stand-in's consent page.
func googleConsent(t *testing.T, page playwright.Page) {
	t.Helper()
	integState(t, page, "google_calendar", "Not configured")
	must(t, page.GetByTestId("card-google_calendar-connect").Click())
	must(t, page.WaitForURL("**/google/o/oauth2/v2/auth?**"))
	integCheck(t, "the consent page", integExpect.Locator(page.GetByTestId("google-consent")).ToBeVisible())
}

func TestGoogleCalendarConnect(t *testing.T) {
	page := newPage(t)
	signUp(t, page, "Calendar Clinic")
	googleConsent(t, page)

	account := fmt.Sprintf("calendar-%d@example.com", time.Now().UnixNano())
	must(t, page.GetByTestId("google-consent-email").Fill(account))
	must(t, page.GetByTestId("google-consent-allow").Click())

	must(t, page.WaitForURL("**/dashboard/integrations"))
	expectText(t, page.GetByTestId("flash-success"), "Google Calendar connected as "+account)
	integState(t, page, "google_calendar", "Connected")
	expectText(t, page.GetByTestId("card-google_calendar-details"), account)
	expectText(t, page.GetByTestId("card-google_calendar-connect"), "Reconnect")

	g := integEntry(t, integStatus(t, page), "googleCalendar")
	if g["connected"] != true || g["email"] != account {
		t.Errorf("status after connecting: %v", g)
	}

	// The connection works: Test connection asks the stand-in's calendar.
	must(t, page.GetByTestId("card-google_calendar-verify").Click())
	integCheck(t, "test result", integExpect.Locator(page.GetByTestId("card-google_calendar-result")).ToContainText("Connection verified"))
}

func TestGoogleCalendarConsentDenied(t *testing.T) {
	page := newPage(t)
	signUp(t, page, "Denied Calendar Clinic")
	googleConsent(t, page)

	must(t, page.GetByTestId("google-consent-deny").Click())

	must(t, page.WaitForURL("**/dashboard/integrations"))
	expectText(t, page.GetByTestId("flash-error"), "Google Calendar access was not granted.")
	integState(t, page, "google_calendar", "Not configured")
	if g := integEntry(t, integStatus(t, page), "googleCalendar"); g["connected"] != false || g["needsAttention"] != false {
		t.Errorf("status after a denial: %v", g)
	}
}
