//go:build e2e

package e2e

import (
	"strings"
	"testing"

	"github.com/playwright-community/playwright-go"

	"byoc/app/apptest"
)

// The console errors of a request the network drops on purpose: htmx's
// own reports of it and Chromium's failed load.
var networkFailure = []string{"htmx:sendError", "htmx:afterRequest", "net::ERR_FAILED", "net::ERR_CONNECTION"}

// A request the network drops is told in the notification area and its
// control is usable again, on a card and in a dialog.
func TestNetworkFailureIsTold(t *testing.T) {
	page := newPage(t, networkFailure...)
	signUp(t, page, "Dropped Clinic")
	integSave(t, page, "resend", map[string]string{"apiKey": "re_" + apptest.RandomHex(10)})

	drop := func(route playwright.Route) { _ = route.Abort("connectionfailed") }
	must(t, page.Route("**/api/integrations/resend/verify", drop))
	verify := page.GetByTestId("card-resend-verify")
	must(t, verify.Click())
	notice := page.GetByTestId("notice-error")
	integCheck(t, "the failure is told", integExpect.Locator(notice).ToContainText("could not be reached"))
	integCheck(t, "it says the change may not have been made", integExpect.Locator(notice).ToContainText("may not have been made"))
	integCheck(t, "Test connection usable again", integExpect.Locator(verify).ToBeEnabled())
	integCheck(t, "Test connection has focus again", integExpect.Locator(verify).ToBeFocused())
	integCheck(t, "the busy label is gone", integExpect.Locator(verify.Locator(".busy-show")).ToBeHidden())
	checkA11y(t, page, "the dashboard telling a failed request")

	// Once the network is back, the next attempt clears the message.
	must(t, page.Unroute("**/api/integrations/resend/verify"))
	must(t, verify.Click())
	integCheck(t, "verified", integExpect.Locator(page.GetByTestId("card-resend-result")).ToContainText("Connection verified"))
	integCheck(t, "the old message is gone", integExpect.Locator(notice).ToHaveCount(0))

	// A save from the dialog: the message shows in the dialog too, what was
	// typed stays and the button works again.
	must(t, page.Route("**/api/integrations/twilio", drop))
	dialog := integOpen(t, page, "twilio")
	sid := "AC" + apptest.RandomHex(16)
	must(t, dialog.GetByTestId("twilio-accountSid-input").Fill(sid))
	must(t, dialog.GetByTestId("twilio-authToken-input").Fill(apptest.RandomHex(16)))
	must(t, dialog.GetByTestId("twilio-phoneNumber-input").Fill("+14155550100"))
	submit := dialog.GetByTestId("form-twilio-submit")
	must(t, submit.Click())
	integCheck(t, "told in the dialog", integExpect.Locator(dialog.GetByTestId("notice-error")).ToContainText("could not be reached"))
	integCheck(t, "Test & Save usable again", integExpect.Locator(submit).ToBeEnabled())
	integCheck(t, "what was typed stays", integExpect.Locator(dialog.GetByTestId("twilio-accountSid-input")).ToHaveValue(sid))
	must(t, page.Unroute("**/api/integrations/twilio"))
	must(t, submit.Click())
	integCheck(t, "saved once the network is back", integExpect.Locator(dialog.GetByTestId("success-twilio")).ToBeVisible())
}

// A session that ended while the dashboard was open: the next action sends
// the page to the sign-in page, which says so, and signing in brings the
// user back to the dashboard.
func TestSessionExpiryReturnsToTheDashboard(t *testing.T) {
	page := newPage(t)
	email, password := signUp(t, page, "Expiry Clinic")

	must(t, page.Context().ClearCookies())
	must(t, page.GetByTestId("refresh").Click())
	must(t, page.WaitForURL("**/login?next=%2Fdashboard%2Fintegrations"))
	integCheck(t, "the sign-in page says why",
		integExpect.Locator(page.GetByTestId("flashes")).ToHaveText("Your session expired. Please sign in again."))
	checkA11y(t, page, "the sign-in page after an expired session")

	must(t, page.GetByLabel("Email").Fill(email))
	must(t, page.GetByLabel("Password").Fill(password))
	must(t, page.GetByTestId("login-submit").Click())
	must(t, page.WaitForURL("**/dashboard/integrations"))
	expectText(t, page.GetByTestId("org-name"), "Expiry Clinic")
	integCheck(t, "said once", integExpect.Locator(page.GetByTestId("flashes")).Not().ToContainText("expired"))
}

// Cancel during a slow provider's save stops it: the dialog says nothing
// was saved, and nothing was. A dialog closed while its save runs still
// tells the outcome.
func TestCancelASlowSave(t *testing.T) {
	page := newPage(t)
	signUp(t, page, "Slow Clinic")

	dialog := integOpen(t, page, "resend")
	slowKey := "re_slow_" + apptest.RandomHex(10)
	must(t, dialog.GetByTestId("resend-apiKey-input").Fill(slowKey))
	submit := dialog.GetByTestId("form-resend-submit")
	must(t, submit.Click())
	cancel := dialog.GetByTestId("form-resend-cancel-request")
	integCheck(t, "Testing… shows", integExpect.Locator(submit).ToContainText("Testing"))
	integCheck(t, "Cancel shows while it runs", integExpect.Locator(cancel).ToBeVisible())
	checkA11y(t, page, "the dialog while a save runs")
	must(t, cancel.Click())
	messages := dialog.Locator("[data-form-messages]")
	integCheck(t, "says nothing was saved", integExpect.Locator(messages).ToContainText("Cancelled: nothing was saved"))
	integCheck(t, "Test & Save usable again", integExpect.Locator(submit).ToBeEnabled())
	integCheck(t, "Cancel hides again", integExpect.Locator(cancel).ToBeHidden())
	integCheck(t, "the key typed stays", integExpect.Locator(dialog.GetByTestId("resend-apiKey-input")).ToHaveValue(slowKey))
	must(t, page.Keyboard().Press("Escape"))
	integState(t, page, "resend", "Not configured")
	if got := integEntry(t, integStatus(t, page), "resend")["connected"]; got != false {
		t.Fatalf("resend connected = %v after the cancel, want false", got)
	}
	reload(t, page)
	integState(t, page, "resend", "Not configured")

	// Closed while its request is on the way: the outcome still shows.
	release := make(chan struct{})
	must(t, page.Route("**/api/integrations/elevenlabs", func(route playwright.Route) {
		<-release
		_ = route.Continue()
	}))
	dialog = integOpen(t, page, "elevenlabs")
	must(t, dialog.GetByTestId("elevenlabs-apiKey-input").Fill("sk_"+apptest.RandomHex(12)))
	must(t, dialog.GetByTestId("form-elevenlabs-submit").Click())
	integCheck(t, "the save runs", integExpect.Locator(dialog.GetByTestId("form-elevenlabs-cancel-request")).ToBeVisible())
	must(t, page.Keyboard().Press("Escape"))
	integCheck(t, "the dialog closes", integExpect.Locator(dialog).ToBeHidden())
	close(release)
	integCheck(t, "the outcome is told", integExpect.Locator(page.GetByTestId("notice-success")).ToHaveText("ElevenLabs is connected."))
	integState(t, page, "elevenlabs", "Connected")

	// And a refusal after closing is told as one.
	release = make(chan struct{})
	must(t, page.Unroute("**/api/integrations/elevenlabs"))
	must(t, page.Route("**/api/integrations/resend", func(route playwright.Route) {
		<-release
		_ = route.Continue()
	}))
	dialog = integOpen(t, page, "resend")
	must(t, dialog.GetByTestId("resend-apiKey-input").Fill("re_invalid_"+apptest.RandomHex(10)))
	must(t, dialog.GetByTestId("form-resend-submit").Click())
	integCheck(t, "the save runs", integExpect.Locator(dialog.GetByTestId("form-resend-cancel-request")).ToBeVisible())
	must(t, dialog.GetByTestId("dialog-resend-close").Click())
	close(release)
	notice := page.GetByTestId("notice-error")
	integCheck(t, "the refusal is told", integExpect.Locator(notice).ToContainText("Resend was not saved"))
	if text, _ := notice.TextContent(); strings.Contains(text, "re_invalid_") {
		t.Fatal("the notice repeats the key")
	}
	integState(t, page, "resend", "Not configured")

	// A card's Test connection has a Cancel beside it while it runs; one
	// that comes too late (here the request is still held in the browser,
	// so the server has nothing to stop) says so, and the outcome follows.
	release = make(chan struct{})
	must(t, page.Unroute("**/api/integrations/resend"))
	must(t, page.Route("**/api/integrations/elevenlabs/verify", func(route playwright.Route) {
		<-release
		_ = route.Continue()
	}))
	must(t, page.GetByTestId("card-elevenlabs-verify").Click())
	cancelTest := page.GetByTestId("card-elevenlabs-verify-cancel")
	must(t, cancelTest.Click())
	integCheck(t, "too late to stop", integExpect.Locator(page.GetByTestId("notice-error")).ToContainText("could not be stopped"))
	integCheck(t, "the Cancel goes", integExpect.Locator(cancelTest).ToHaveCount(0))
	close(release)
	integCheck(t, "the outcome follows", integExpect.Locator(page.GetByTestId("card-elevenlabs-result")).ToContainText("Connection verified"))

	// The answer may arrive before the dialog's close event is handled (a
	// busy browser): the outcome is told all the same. A listener ahead of
	// the page's own holds that close event back until the outcome shows.
	release = make(chan struct{})
	must(t, page.Unroute("**/api/integrations/elevenlabs/verify"))
	must(t, page.Route("**/api/integrations/resend", func(route playwright.Route) {
		<-release
		_ = route.Continue()
	}))
	_, err := page.Evaluate(`() => window.addEventListener("close", function hold(e) {
		if (e.target.id === "dialog-resend") {
			e.stopImmediatePropagation();
			window.removeEventListener("close", hold, true);
		}
	}, true)`)
	must(t, err)
	dialog = integOpen(t, page, "resend")
	must(t, dialog.GetByTestId("resend-apiKey-input").Fill("re_"+apptest.RandomHex(16)))
	must(t, dialog.GetByTestId("form-resend-submit").Click())
	integCheck(t, "the save runs", integExpect.Locator(dialog.GetByTestId("form-resend-cancel-request")).ToBeVisible())
	must(t, page.Keyboard().Press("Escape"))
	integCheck(t, "the dialog closes", integExpect.Locator(dialog).ToBeHidden())
	close(release)
	integCheck(t, "the outcome is told before the close event", integExpect.Locator(page.GetByTestId("notice-success")).ToHaveText("Resend is connected."))
	integState(t, page, "resend", "Connected")
}
