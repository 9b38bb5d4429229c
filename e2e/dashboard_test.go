//go:build e2e

package e2e

import (
	"strings"
	"testing"

	"github.com/playwright-community/playwright-go"

	"byoc/app/apptest"
)

// integSave fills the provider's open dialog (inputs by field name; a
// select for "region"), submits it and waits for the success panel and for
// the dialog to close by itself.
func integSave(t *testing.T, page playwright.Page, provider string, fields map[string]string) {
	t.Helper()
	dialog := integOpen(t, page, provider)
	for name, v := range fields {
		if name == "region" {
			_, err := dialog.GetByTestId(provider + "-region-input").SelectOption(playwright.SelectOptionValues{Values: &[]string{v}})
			integCheck(t, "choose the region", err)
			continue
		}
		must(t, dialog.GetByTestId(provider+"-"+name+"-input").Fill(v))
	}
	must(t, dialog.GetByTestId("form-"+provider+"-submit").Click())
	integCheck(t, provider+" saved", integExpect.Locator(dialog.GetByTestId("success-"+provider)).ToBeVisible())
	integCheck(t, provider+" dialog closes by itself", integExpect.Locator(dialog).ToBeHidden())
}

func reload(t *testing.T, page playwright.Page) {
	t.Helper()
	_, err := page.Reload()
	integCheck(t, "reload", err)
}

func TestUpdateKeepsWhatWasNotChanged(t *testing.T) {
	page := newPage(t)
	signUp(t, page, "Update Clinic")

	resendOld, resendNew := "re_"+apptest.RandomHex(10), "re_"+apptest.RandomHex(10)
	elevenOld, elevenNew := "sk_"+apptest.RandomHex(12), "sk_"+apptest.RandomHex(12)
	tokenOld, tokenNew := apptest.RandomHex(16), apptest.RandomHex(16)
	vapiOld, vapiNew := "vk_live_eu_"+apptest.RandomHex(8), "vk_live_eu_"+apptest.RandomHex(8)

	integSave(t, page, "resend", map[string]string{"apiKey": resendOld, "fromEmail": "hello@example.com"})
	integSave(t, page, "elevenlabs", map[string]string{"apiKey": elevenOld, "voiceId": "21m00Tcm4TlvDq8ikWAM"})
	integSave(t, page, "twilio", map[string]string{"accountSid": "AC" + apptest.RandomHex(16), "authToken": tokenOld,
		"phoneNumber": "2025550142", "whatsappNumber": "+442071838750"})
	integSave(t, page, "vapi", map[string]string{"apiKey": vapiOld, "region": "eu"})

	reload(t, page)
	// The Update dialog names itself, shows what is stored and what a blank
	// secret means; only the key is typed again.
	dialog := integOpen(t, page, "resend")
	integCheck(t, "titled as an update", integExpect.Locator(dialog.Locator("#dialog-resend-title")).ToHaveText("Update Resend"))
	integCheck(t, "sender filled in", integExpect.Locator(dialog.GetByTestId("resend-fromEmail-input")).ToHaveValue("hello@example.com"))
	integCheck(t, "key blank", integExpect.Locator(dialog.GetByTestId("resend-apiKey-input")).ToHaveValue(""))
	integCheck(t, "stored key named", integExpect.Locator(dialog.Locator("#resend-apiKey-hint")).ToContainText("••••"+resendOld[len(resendOld)-4:]))
	checkA11y(t, page, "the Update dialog")
	must(t, page.Keyboard().Press("Escape"))

	dialog = integOpen(t, page, "twilio")
	integCheck(t, "WhatsApp number grouped the UK way",
		integExpect.Locator(dialog.GetByTestId("twilio-whatsappNumber-input")).ToHaveValue("+44 20 7183 8750"))
	integCheck(t, "SMS number grouped the US way",
		integExpect.Locator(dialog.GetByTestId("twilio-phoneNumber-input")).ToHaveValue("+1 202-555-0142"))
	must(t, page.Keyboard().Press("Escape"))

	dialog = integOpen(t, page, "vapi")
	integCheck(t, "region filled in", integExpect.Locator(dialog.GetByTestId("vapi-region-input")).ToHaveValue("eu"))
	must(t, page.Keyboard().Press("Escape"))

	integSave(t, page, "resend", map[string]string{"apiKey": resendNew})
	integSave(t, page, "elevenlabs", map[string]string{"apiKey": elevenNew})
	integSave(t, page, "twilio", map[string]string{"authToken": tokenNew})
	// An EU key is refused in the US region: this save passes only when the
	// stored region was kept.
	integSave(t, page, "vapi", map[string]string{"apiKey": vapiNew})

	reload(t, page)
	st := integStatus(t, page)
	checks := []struct{ provider, field, want string }{
		{"resend", "fromEmail", "hello@example.com"},
		{"resend", "apiKey", "••••" + resendNew[len(resendNew)-4:]},
		{"elevenlabs", "voiceId", "21m00Tcm4TlvDq8ikWAM"},
		{"elevenlabs", "apiKey", "••••" + elevenNew[len(elevenNew)-4:]},
		{"twilio", "whatsappNumber", "+4420•••8750"},
		{"twilio", "authToken", "••••" + tokenNew[len(tokenNew)-4:]},
		{"vapi", "region", "eu"},
		{"vapi", "apiKey", "••••" + vapiNew[len(vapiNew)-4:]},
	}
	for _, c := range checks {
		if got := integEntry(t, st, c.provider)[c.field]; got != c.want {
			t.Errorf("%s %s = %v, want %q", c.provider, c.field, got, c.want)
		}
	}
	integCheck(t, "the sender on the card", integExpect.Locator(page.GetByTestId("card-resend-details")).ToContainText("hello@example.com"))
	integCheck(t, "the voice on the card", integExpect.Locator(page.GetByTestId("card-elevenlabs-details")).ToContainText("21m00Tcm4TlvDq8ikWAM"))

	// The Vapi card lists both assistants and the webhook URL they call.
	for _, id := range []string{"card-vapi-inbound-assistant", "card-vapi-outbound-assistant"} {
		integCheck(t, id, integExpect.Locator(page.GetByTestId(id)).Not().ToBeEmpty())
		integCheck(t, id+" copy", integExpect.Locator(page.GetByTestId(id+"-copy")).ToBeVisible())
	}
	integCheck(t, "webhook URL", integExpect.Locator(page.GetByTestId("card-vapi-webhook-url")).ToHaveText(baseURL+"/api/webhooks/vapi"))
	checkA11y(t, page, "the dashboard with four connections")

	// The Disconnect question says what stops working.
	must(t, page.GetByTestId("card-vapi-disconnect").Click())
	confirm := page.GetByTestId("confirm-dialog")
	integCheck(t, "says what stops", integExpect.Locator(confirm).ToContainText("stop reaching BYOC"))
	integCheck(t, "says what stays", integExpect.Locator(confirm).ToContainText("stay in your Vapi account"))
	checkA11y(t, page, "the Disconnect question")
	must(t, page.GetByTestId("confirm-accept").Click())
	integState(t, page, "vapi", "Not configured")
	integCheck(t, "focus on the card's heading", integExpect.Locator(page.Locator("#card-vapi-title")).ToBeFocused())
	integCheck(t, "disconnect announced", integExpect.Locator(page.GetByTestId("announcement")).ToHaveText("Vapi disconnected."))
	// The dialog offers a fresh Configure form again.
	dialog = integOpen(t, page, "vapi")
	integCheck(t, "titled Connect again", integExpect.Locator(dialog.Locator("#dialog-vapi-title")).ToHaveText("Connect Vapi"))
	integCheck(t, "the EU region is not kept", integExpect.Locator(dialog.GetByTestId("vapi-region-input")).ToHaveValue("us"))

	apptest.AssertNoSecret(t, "the server log", serverLog.String(), resendOld, resendNew, elevenOld, elevenNew, tokenOld, tokenNew, vapiOld, vapiNew)
}

func TestRefusedSaveKeepsWhatWasTyped(t *testing.T) {
	page := newPage(t)
	signUp(t, page, "Typing Clinic")

	dialog := integOpen(t, page, "twilio")
	checkA11y(t, page, "the Configure dialog")
	sid, refused := "AC"+apptest.RandomHex(16), "invalid_"+apptest.RandomHex(12)
	must(t, dialog.GetByTestId("twilio-accountSid-input").Fill(sid))
	must(t, dialog.GetByTestId("twilio-authToken-input").Fill(refused))
	must(t, dialog.GetByTestId("twilio-phoneNumber-input").Fill("+33 6 12 34 56 78"))
	must(t, dialog.GetByTestId("twilio-whatsappNumber-input").Fill("020 7183 875"))
	must(t, dialog.GetByTestId("form-twilio-submit").Click())
	// The too-short UK number is the server's to refuse: one set of rules.
	integCheck(t, "the number's message", integExpect.Locator(dialog.GetByTestId("twilio-whatsappNumber-error")).ToBeVisible())
	integCheck(t, "the field is marked", integExpect.Locator(dialog.GetByTestId("twilio-whatsappNumber-input")).ToHaveAttribute("aria-invalid", "true"))
	checkA11y(t, page, "the dialog with a field's message")

	// Every typed value stays, the secret too.
	kept := map[string]string{"accountSid": sid, "authToken": refused, "phoneNumber": "+33 6 12 34 56 78", "whatsappNumber": "020 7183 875"}
	for name, v := range kept {
		integCheck(t, name+" kept", integExpect.Locator(dialog.GetByTestId("twilio-"+name+"-input")).ToHaveValue(v))
	}

	// A new attempt clears the old messages as soon as it starts.
	held := make(chan struct{})
	must(t, page.Route("**/api/integrations/twilio", func(r playwright.Route) {
		<-held
		_ = r.Continue()
	}))
	must(t, dialog.GetByTestId("twilio-whatsappNumber-input").Fill("+44 20 7183 8750"))
	must(t, dialog.GetByTestId("form-twilio-submit").Click())
	integCheck(t, "the old message goes at once", integExpect.Locator(dialog.GetByTestId("twilio-whatsappNumber-error")).ToHaveCount(0))
	close(held)
	integCheck(t, "the provider's refusal", integExpect.Locator(dialog.GetByTestId("form-error")).ToContainText("Twilio"))
	integCheck(t, "the number's message is gone", integExpect.Locator(dialog.GetByTestId("twilio-whatsappNumber-error")).ToHaveCount(0))
	kept["whatsappNumber"] = "+44 20 7183 8750"
	for name, v := range kept {
		integCheck(t, name+" still kept", integExpect.Locator(dialog.GetByTestId("twilio-"+name+"-input")).ToHaveValue(v))
	}
	checkA11y(t, page, "the dialog with the provider's refusal")

	// The secret can be shown and hidden again.
	token := dialog.GetByTestId("twilio-authToken-input")
	toggle := dialog.GetByTestId("twilio-authToken-toggle")
	must(t, toggle.Click())
	integCheck(t, "shown", integExpect.Locator(token).ToHaveAttribute("type", "text"))
	integCheck(t, "pressed", integExpect.Locator(toggle).ToHaveAttribute("aria-pressed", "true"))
	must(t, toggle.Click())
	integCheck(t, "hidden", integExpect.Locator(token).ToHaveAttribute("type", "password"))

	// Each help line links to the provider's own page.
	links := dialog.Locator("aside.info-box a[target=_blank]")
	integCheck(t, "help links", integExpect.Locator(links).ToHaveCount(3))
	href, err := links.First().GetAttribute("href")
	integCheck(t, "help link", err)
	if !strings.HasPrefix(href, "https://console.twilio.com/") {
		t.Errorf("the first help link goes to %q", href)
	}

	must(t, page.Unroute("**/api/integrations/twilio"))
	must(t, token.Fill(apptest.RandomHex(16)))
	must(t, dialog.GetByTestId("form-twilio-submit").Click())
	integCheck(t, "saved", integExpect.Locator(dialog.GetByTestId("success-twilio")).ToBeVisible())
	checkA11y(t, page, "the success panel")
	apptest.AssertNoSecret(t, "the server log", serverLog.String(), refused)
}

func TestLimitedKeyStaysVisible(t *testing.T) {
	page := newPage(t)
	signUp(t, page, "Limited Clinic")

	dialog := integOpen(t, page, "resend")
	must(t, dialog.GetByTestId("resend-apiKey-input").Fill("re_restricted_"+apptest.RandomHex(8)))
	must(t, dialog.GetByTestId("form-resend-submit").Click())
	integCheck(t, "amber notice in the success panel", integExpect.Locator(dialog.GetByTestId("success-limited")).ToContainText("Sending-only"))
	integCheck(t, "closes by itself", integExpect.Locator(dialog).ToBeHidden())
	integCheck(t, "badge", integExpect.Locator(page.GetByTestId("card-resend-limited")).ToHaveText("Limited"))
	// Without a reload, the dialog has become the Update dialog.
	dialog = integOpen(t, page, "resend")
	integCheck(t, "now an update", integExpect.Locator(dialog.Locator("#dialog-resend-title")).ToHaveText("Update Resend"))
	integCheck(t, "the stored key named", integExpect.Locator(dialog.Locator("#resend-apiKey-hint")).ToContainText("Leave blank"))
	must(t, page.Keyboard().Press("Escape"))

	reload(t, page)
	integCheck(t, "badge after a reload", integExpect.Locator(page.GetByTestId("card-resend-limited")).ToHaveText("Limited"))
	integCheck(t, "explanation after a reload", integExpect.Locator(page.GetByTestId("card-resend-warning")).ToContainText("not manage domains"))
	if r := integEntry(t, integStatus(t, page), "resend"); r["limited"] != true || r["warning"] == nil {
		t.Errorf("status: %v", r)
	}

	// Test connection: an amber result, announced, focus back on the button.
	must(t, page.GetByTestId("card-resend-verify").Click())
	result := page.GetByTestId("card-resend-result")
	integCheck(t, "result", integExpect.Locator(result).ToContainText("limited access"))
	integCheck(t, "amber", integExpect.Locator(result).ToHaveClass("notice notice-warning"))
	integCheck(t, "focus back on Test connection", integExpect.Locator(page.GetByTestId("card-resend-verify")).ToBeFocused())
	integCheck(t, "announced", integExpect.Locator(page.GetByTestId("announcement")).ToContainText("Resend: Connection verified, with limited access."))
	integCheck(t, "badge after the test", integExpect.Locator(page.GetByTestId("card-resend-limited")).ToBeVisible())
	checkA11y(t, page, "a limited card with its test result")

	// A full-access key (changed through the JSON API) takes the badge away.
	_, err := page.Evaluate(`async (key) => {
		const token = document.querySelector('meta[name="csrf-token"]').content;
		await fetch("/api/integrations/resend", {method: "PATCH",
			headers: {"Content-Type": "application/json", "X-CSRF-Token": token}, body: JSON.stringify({apiKey: key})});
	}`, "re_"+apptest.RandomHex(10))
	integCheck(t, "a full key through the API", err)
	reload(t, page)
	integCheck(t, "no badge with a full key", integExpect.Locator(page.GetByTestId("card-resend-limited")).ToHaveCount(0))
}

func TestSuccessPanelStaysWhileHovered(t *testing.T) {
	page := newPage(t)
	signUp(t, page, "Hover Clinic")

	dialog := integOpen(t, page, "elevenlabs")
	must(t, dialog.GetByTestId("elevenlabs-apiKey-input").Fill("sk_"+apptest.RandomHex(12)))
	must(t, dialog.GetByTestId("form-elevenlabs-submit").Click())
	panel := dialog.GetByTestId("success-elevenlabs")
	integCheck(t, "saved", integExpect.Locator(panel).ToBeVisible())
	box, err := panel.BoundingBox()
	integCheck(t, "panel box", err)
	must(t, page.Mouse().Move(box.X+box.Width/2, box.Y+box.Height/3, playwright.MouseMoveOptions{Steps: playwright.Int(4)}))
	page.WaitForTimeout(3500) // longer than the panel's 2 s
	integCheck(t, "still open while hovered", integExpect.Locator(panel).ToBeVisible())

	// The pointer leaves: the dialog closes by itself.
	must(t, page.Mouse().Move(4, 4, playwright.MouseMoveOptions{Steps: playwright.Int(4)}))
	integCheck(t, "closes once left", integExpect.Locator(dialog).ToBeHidden())
	integCheck(t, "the card", integExpect.Locator(page.GetByTestId("card-elevenlabs-state")).ToHaveText("Connected"))
}
