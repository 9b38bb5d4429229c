//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/playwright-community/playwright-go"

	"byoc/app/apptest"
)

// These tests need the server in sandbox mode: every provider is a local
// stand-in, where well-formed keys are valid and keys containing "invalid"
// are refused (see package sandbox).

// integExpect waits up to 10 s for a locator to meet its assertion.
var integExpect = playwright.NewPlaywrightAssertions(10000)

func integCheck(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// integOpen opens a provider's settings dialog from its card.
func integOpen(t *testing.T, page playwright.Page, provider string) playwright.Locator {
	t.Helper()
	must(t, page.GetByTestId("card-"+provider+"-configure").Click())
	dialog := page.GetByTestId("dialog-" + provider)
	integCheck(t, "the "+provider+" dialog opens", integExpect.Locator(dialog).ToBeVisible())
	return dialog
}

// integState waits until a provider's card shows the state.
func integState(t *testing.T, page playwright.Page, provider, state string) {
	t.Helper()
	integCheck(t, provider+" card is "+state,
		integExpect.Locator(page.GetByTestId("card-"+provider+"-state")).ToHaveText(state))
}

// integStatus reads /api/integrations/status with the page's session.
func integStatus(t *testing.T, page playwright.Page) map[string]any {
	t.Helper()
	v, err := page.Evaluate(`() => fetch("/api/integrations/status", {headers: {Accept: "application/json"}}).then(r => r.json())`)
	integCheck(t, "status API", err)
	m, _ := v.(map[string]any)
	data, _ := m["data"].(map[string]any)
	if m["success"] != true || data == nil {
		t.Fatalf("status API answered %v", v)
	}
	return data
}

func integEntry(t *testing.T, status map[string]any, key string) map[string]any {
	t.Helper()
	e, ok := status[key].(map[string]any)
	if !ok {
		t.Fatalf("status has no %s: %v", key, status)
	}
	return e
}

func TestIntegrationsVapiFlow(t *testing.T) {
	page := newPage(t)
	signUp(t, page, "Vapi Flow Clinic")

	for _, p := range []string{"vapi", "twilio", "google_calendar", "resend", "elevenlabs"} {
		integState(t, page, p, "Not configured")
	}
	if v := integEntry(t, integStatus(t, page), "vapi"); v["connected"] != false {
		t.Fatalf("status before: %v", v)
	}

	var posts atomic.Int32
	page.OnRequest(func(r playwright.Request) {
		if r.Method() == "POST" && strings.HasSuffix(r.URL(), "/api/integrations/vapi") {
			posts.Add(1)
		}
	})

	dialog := integOpen(t, page, "vapi")
	key := dialog.GetByTestId("vapi-apiKey-input")
	integCheck(t, "focus on the first field", integExpect.Locator(key).ToBeFocused())

	// Too short: the browser refuses to send.
	must(t, key.Fill("vk_short"))
	must(t, dialog.GetByTestId("form-vapi-submit").Click())
	tooShort, err := key.Evaluate("el => el.validity.tooShort", nil)
	integCheck(t, "validity", err)
	if tooShort != true {
		t.Errorf("a 8-character key is not tooShort")
	}
	page.WaitForTimeout(300)
	if n := posts.Load(); n != 0 {
		t.Fatalf("the too-short key was sent (%d requests)", n)
	}

	// Refused by Vapi: the server's message shows in the dialog; the key
	// typed stays in its field (the server never sends it back).
	refusedKey := "vk_live_invalid_" + apptest.RandomHex(8)
	must(t, key.Fill(refusedKey))
	must(t, dialog.GetByTestId("form-vapi-submit").Click())
	integCheck(t, "refusal shown", integExpect.Locator(dialog.GetByTestId("form-error")).ToContainText("Vapi"))
	integCheck(t, "key kept", integExpect.Locator(dialog.GetByTestId("vapi-apiKey-input")).ToHaveValue(refusedKey))
	if n := posts.Load(); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}

	// A good key: success with both assistant IDs, the card turns Connected,
	// the dialog closes by itself.
	good := "vk_live_" + apptest.RandomHex(12)
	must(t, dialog.GetByTestId("vapi-apiKey-input").Fill(good))
	must(t, dialog.GetByTestId("form-vapi-submit").Click())
	integCheck(t, "success", integExpect.Locator(dialog.GetByTestId("success-vapi")).ToBeVisible())
	for _, id := range []string{"success-inbound-id", "success-outbound-id"} {
		text, err := dialog.GetByTestId(id).TextContent()
		integCheck(t, id, err)
		if strings.TrimSpace(text) == "" {
			t.Errorf("%s is empty", id)
		}
	}
	integState(t, page, "vapi", "Connected")
	integCheck(t, "the dialog closes by itself", integExpect.Locator(dialog).ToBeHidden())
	integCheck(t, "masked key on the card",
		integExpect.Locator(page.GetByTestId("card-vapi-details")).ToContainText("••••"+good[len(good)-4:]))

	v := integEntry(t, integStatus(t, page), "vapi")
	if v["connected"] != true || v["apiKey"] != "••••"+good[len(good)-4:] {
		t.Errorf("status after: %v", v)
	}

	// A new connection takes HMAC-signed webhooks only; the switch on the
	// card turns that off, and the card shows it.
	signing := page.GetByTestId("card-vapi-webhook-signing-toggle")
	integCheck(t, "HMAC only on", integExpect.Locator(signing).ToHaveAttribute("aria-checked", "true"))
	must(t, signing.Click())
	integCheck(t, "HMAC only off", integExpect.Locator(page.GetByTestId("card-vapi-webhook-signing-toggle")).
		ToHaveAttribute("aria-checked", "false"))
	integCheck(t, "signing result", integExpect.Locator(page.GetByTestId("card-vapi-result")).ToContainText("webhook secret"))
	if v := integEntry(t, integStatus(t, page), "vapi"); v["webhookHmacOnly"] != false {
		t.Errorf("status after turning HMAC only off: %v", v)
	}

	// Test connection shows the result on the card.
	must(t, page.GetByTestId("card-vapi-verify").Click())
	integCheck(t, "test result", integExpect.Locator(page.GetByTestId("card-vapi-result")).ToContainText("Connection verified"))
	integState(t, page, "vapi", "Connected")

	// Disconnect asks first; cancelling keeps the connection.
	must(t, page.GetByTestId("card-vapi-disconnect").Click())
	confirm := page.GetByTestId("confirm-dialog")
	integCheck(t, "confirm dialog", integExpect.Locator(confirm).ToBeVisible())
	integCheck(t, "confirm question", integExpect.Locator(confirm).ToContainText("Disconnect Vapi?"))
	must(t, page.GetByTestId("confirm-cancel").Click())
	integCheck(t, "confirm closed", integExpect.Locator(confirm).ToBeHidden())
	integState(t, page, "vapi", "Connected")

	must(t, page.GetByTestId("card-vapi-disconnect").Click())
	must(t, page.GetByTestId("confirm-accept").Click())
	integState(t, page, "vapi", "Not configured")
	integCheck(t, "disconnect result", integExpect.Locator(page.GetByTestId("card-vapi-result")).ToContainText("disconnected"))
	if v := integEntry(t, integStatus(t, page), "vapi"); v["connected"] != false {
		t.Errorf("status after disconnect: %v", v)
	}

	apptest.AssertNoSecret(t, "the server log", serverLog.String(), good)
}

func TestIntegrationsTwilioReadsThePhoneNumber(t *testing.T) {
	page := newPage(t)
	signUp(t, page, "Twilio Clinic")

	dialog := integOpen(t, page, "twilio")
	integCheck(t, "focus on the first field", integExpect.Locator(dialog.GetByTestId("twilio-accountSid-input")).ToBeFocused())
	must(t, dialog.GetByTestId("twilio-accountSid-input").Fill("AC"+apptest.RandomHex(16)))
	authToken := apptest.RandomHex(16)
	must(t, dialog.GetByTestId("twilio-authToken-input").Fill(authToken))
	// The number stays as typed: the server reads it with its own rules.
	phone := dialog.GetByTestId("twilio-phoneNumber-input")
	must(t, phone.PressSequentially("2025550142"))
	integCheck(t, "kept as typed", integExpect.Locator(phone).ToHaveValue("2025550142"))

	// A bad SID pattern is refused by the browser.
	sid := dialog.GetByTestId("twilio-accountSid-input")
	must(t, sid.Fill("SK"+apptest.RandomHex(16)))
	must(t, dialog.GetByTestId("form-twilio-submit").Click())
	mismatch, err := sid.Evaluate("el => el.validity.patternMismatch", nil)
	integCheck(t, "validity", err)
	if mismatch != true {
		t.Error("an SK… SID passes the pattern")
	}
	must(t, sid.Fill("AC"+apptest.RandomHex(16)))

	must(t, phone.Fill("(202) 555-0142"))
	must(t, dialog.GetByTestId("form-twilio-submit").Click())
	integCheck(t, "masked number", integExpect.Locator(dialog.GetByTestId("success-phone")).ToHaveText("+1202•••0142"))
	integState(t, page, "twilio", "Connected")
	integCheck(t, "the dialog closes by itself", integExpect.Locator(dialog).ToBeHidden())
	integCheck(t, "number on the card", integExpect.Locator(page.GetByTestId("card-twilio-details")).ToContainText("+1202•••0142"))

	if tw := integEntry(t, integStatus(t, page), "twilio"); tw["phoneNumber"] != "+1202•••0142" {
		t.Errorf("status: %v", tw)
	}

	// Opened again, the stored number is grouped as its country writes it.
	dialog = integOpen(t, page, "twilio")
	integCheck(t, "grouped", integExpect.Locator(dialog.GetByTestId("twilio-phoneNumber-input")).ToHaveValue("+1 202-555-0142"))
	apptest.AssertNoSecret(t, "the server log", serverLog.String(), authToken)
}

func TestIntegrationsDialogCloses(t *testing.T) {
	page := newPage(t)
	signUp(t, page, "Dialog Clinic")

	closers := []struct {
		name  string
		close func(dialog playwright.Locator) error
	}{
		{"Esc", func(playwright.Locator) error { return page.Keyboard().Press("Escape") }},
		{"backdrop click", func(playwright.Locator) error { return page.Mouse().Click(8, 8) }},
		{"X button", func(d playwright.Locator) error { return d.GetByTestId("dialog-resend-close").Click() }},
		{"Cancel", func(d playwright.Locator) error {
			return d.GetByRole(*playwright.AriaRoleButton, playwright.LocatorGetByRoleOptions{Name: "Cancel"}).Click()
		}},
	}
	for _, c := range closers {
		dialog := integOpen(t, page, "resend")
		key := dialog.GetByTestId("resend-apiKey-input")
		must(t, key.Fill("re_typed_"+apptest.RandomHex(6)))
		must(t, c.close(dialog))
		integCheck(t, c.name+" closes the dialog", integExpect.Locator(dialog).ToBeHidden())
		integCheck(t, c.name+": focus back on Configure", integExpect.Locator(page.GetByTestId("card-resend-configure")).ToBeFocused())
		// Reopened, the form is fresh: nothing typed stays in the page.
		dialog = integOpen(t, page, "resend")
		integCheck(t, c.name+": form reset", integExpect.Locator(dialog.GetByTestId("resend-apiKey-input")).ToHaveValue(""))
		must(t, page.Keyboard().Press("Escape"))
		integCheck(t, "closed", integExpect.Locator(dialog).ToBeHidden())
	}

	// A click inside the dialog does not close it.
	dialog := integOpen(t, page, "resend")
	must(t, dialog.GetByText("Where to find these").Click())
	integCheck(t, "still open", integExpect.Locator(dialog).ToBeVisible())
}

func TestIntegrationsRefreshShowsChangesMadeElsewhere(t *testing.T) {
	page := newPage(t)
	signUp(t, page, "Refresh Clinic")
	integState(t, page, "resend", "Not configured")

	// Connected through the JSON API, as another tab or a script would.
	status, err := page.Evaluate(`async (key) => {
		const token = document.querySelector('meta[name="csrf-token"]').content;
		const r = await fetch("/api/integrations/resend", {method: "POST",
			headers: {"Content-Type": "application/json", "X-CSRF-Token": token},
			body: JSON.stringify({apiKey: key})});
		return r.status;
	}`, "re_"+apptest.RandomHex(10))
	integCheck(t, "save through the API", err)
	if fmt.Sprint(status) != "200" {
		t.Fatalf("save through the API: %v", status)
	}
	integState(t, page, "resend", "Not configured")
	must(t, page.GetByTestId("refresh").Click())
	integState(t, page, "resend", "Connected")
}

func TestIntegrationsTenantsAreIsolated(t *testing.T) {
	pageA, pageB := newPage(t), newPage(t)
	signUp(t, pageA, "Clinic A")
	signUp(t, pageB, "Clinic B")

	connect := func(page playwright.Page) string {
		key := "vk_live_" + apptest.RandomHex(12)
		dialog := integOpen(t, page, "vapi")
		must(t, dialog.GetByTestId("vapi-apiKey-input").Fill(key))
		must(t, dialog.GetByTestId("form-vapi-submit").Click())
		integState(t, page, "vapi", "Connected")
		integCheck(t, "dialog closes", integExpect.Locator(dialog).ToBeHidden())
		return key
	}
	keyA := connect(pageA)

	_, err := pageB.Reload()
	integCheck(t, "reload B", err)
	integState(t, pageB, "vapi", "Not configured")
	if v := integEntry(t, integStatus(t, pageB), "vapi"); v["connected"] != false {
		t.Fatalf("org B sees org A's Vapi: %v", v)
	}

	keyB := connect(pageB)
	_, err = pageA.Reload()
	integCheck(t, "reload A", err)
	for page, key := range map[playwright.Page]string{pageA: keyA, pageB: keyB} {
		integState(t, page, "vapi", "Connected")
		if v := integEntry(t, integStatus(t, page), "vapi"); v["apiKey"] != "••••"+key[len(key)-4:] {
			t.Errorf("status shows another org's key: %v", v)
		}
	}

	// A dashboard with several states, for people to look at.
	dialog := integOpen(t, pageA, "resend")
	must(t, dialog.GetByTestId("resend-apiKey-input").Fill("re_restricted_"+apptest.RandomHex(6)))
	must(t, dialog.GetByTestId("form-resend-submit").Click())
	integState(t, pageA, "resend", "Connected")
	integCheck(t, "dialog closes", integExpect.Locator(dialog).ToBeHidden())
	shot := filepath.Join(os.TempDir(), "byoc-e2e-dashboard.png")
	if _, err := pageA.Screenshot(playwright.PageScreenshotOptions{Path: playwright.String(shot), FullPage: playwright.Bool(true)}); err == nil {
		t.Logf("dashboard screenshot: %s", shot)
	}
}

// TestProviderLogosAreDrawn checks that every card's logo, a white initial,
// has its provider's colour behind it: the stylesheet must carry each
// provider's accent class.
func TestProviderLogosAreDrawn(t *testing.T) {
	page := newPage(t)
	signUp(t, page, "Logo Clinic")
	for _, p := range []string{"vapi", "twilio", "google_calendar", "resend", "elevenlabs"} {
		logo := page.GetByTestId("card-" + p).Locator(".provider-logo")
		v, err := logo.Evaluate(`el => [getComputedStyle(el).backgroundColor, getComputedStyle(el).color, el.textContent.trim()]`, nil)
		integCheck(t, p+" logo", err)
		got, _ := v.([]any)
		if len(got) != 3 {
			t.Fatalf("%s logo: %v", p, v)
		}
		bg, fg, initial := fmt.Sprint(got[0]), fmt.Sprint(got[1]), fmt.Sprint(got[2])
		if bg == "rgba(0, 0, 0, 0)" || bg == "transparent" || bg == fg || len(initial) != 1 {
			t.Errorf("%s logo: %q on background %q in %q: not visible", p, initial, bg, fg)
		}
	}
}
