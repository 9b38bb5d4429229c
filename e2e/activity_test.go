//go:build e2e

package e2e

import (
	"testing"

	"github.com/playwright-community/playwright-go"

	"byoc/app/apptest"
)

// The activity page lists the saves, newest first; choosing a filter
// re-renders the log in place and puts the filter into the address, which
// loads the same filtered page when opened again.
func TestActivityPageListsSavesAndFiltersKeepTheAddress(t *testing.T) {
	page := newPage(t)
	email, _ := signUp(t, page, "Activity Clinic")
	resendKey, elevenKey := "re_"+apptest.RandomHex(10), "sk_"+apptest.RandomHex(12)
	integSave(t, page, "resend", map[string]string{"apiKey": resendKey, "fromEmail": "hello@example.com"})
	integSave(t, page, "elevenlabs", map[string]string{"apiKey": elevenKey, "voiceId": "21m00Tcm4TlvDq8ikWAM"})

	must(t, page.GetByTestId("nav-activity").Click())
	must(t, page.WaitForURL("**/settings/activity"))
	rows := page.GetByTestId("audit-row")
	must(t, integExpect.Locator(rows).ToHaveCount(2))
	expectText(t, rows.First().GetByTestId("audit-provider-cell"), "ElevenLabs")
	expectText(t, rows.First().GetByTestId("audit-what"), "Saved or connected")
	expectText(t, rows.First().GetByTestId("audit-who"), email)
	expectText(t, rows.Nth(1).GetByTestId("audit-provider-cell"), "Resend")

	if _, err := page.GetByTestId("audit-provider").SelectOption(playwright.SelectOptionValues{Values: &[]string{"resend"}}); err != nil {
		t.Fatal(err)
	}
	must(t, page.WaitForURL("**/settings/activity?*provider=resend*"))
	must(t, integExpect.Locator(rows).ToHaveCount(1))
	expectText(t, rows.First().GetByTestId("audit-provider-cell"), "Resend")

	shared := page.URL()

	// Back to every provider through the browser's history.
	if _, err := page.GoBack(); err != nil {
		t.Fatal(err)
	}
	must(t, page.WaitForURL("**/settings/activity"))
	must(t, integExpect.Locator(page.GetByTestId("audit-row")).ToHaveCount(2))

	// The address is shareable: opened afresh it shows the same filter.
	if _, err := page.Goto(shared); err != nil {
		t.Fatal(err)
	}
	must(t, integExpect.Locator(page.GetByTestId("audit-row")).ToHaveCount(1))
	must(t, integExpect.Locator(page.GetByTestId("audit-provider")).ToHaveValue("resend"))

	checkA11y(t, page, "the activity page")
	apptest.AssertNoSecret(t, "the server log", serverLog.String(), resendKey, elevenKey)
}
