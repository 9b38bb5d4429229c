//go:build e2e

package e2e

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/playwright-community/playwright-go"

	"byoc/app/apptest"
)

// webhookWith posts an event of the assistant signed with secret, as
// Vapi's HMAC credential signs it, and returns the answer's status.
func webhookWith(t *testing.T, assistant, secret string) int {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"message": map[string]any{"type": "speech-update",
		"call": map[string]any{"id": "call-" + apptest.RandomHex(6), "assistantId": assistant}}})
	ts := strconv.FormatInt(time.Now().UnixMilli(), 10)
	req, err := http.NewRequest(http.MethodPost, baseURL+"/api/webhooks/vapi", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Signature", apptest.VapiSignature(secret, ts, body))
	req.Header.Set("X-Timestamp", ts)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

// TestWebhookSecretRevealCopyRotate: on the Vapi card an admin reveals the
// webhook secret once (after a confirmation) and copies it; the card then
// offers no second reveal; Rotate shows a new secret once, says until when
// the previous one is accepted, and both verify webhooks; a reload shows
// neither secret.
func TestWebhookSecretRevealCopyRotate(t *testing.T) {
	page := newPage(t)
	signUp(t, page, "Secret Rotation Clinic")
	dialog := integOpen(t, page, "vapi")
	must(t, dialog.GetByTestId("vapi-apiKey-input").Fill("vk_live_"+apptest.RandomHex(12)))
	must(t, dialog.GetByTestId("form-vapi-submit").Click())
	integState(t, page, "vapi", "Connected")
	integCheck(t, "the dialog closes", integExpect.Locator(dialog).ToBeHidden())
	assistant, err := page.GetByTestId("card-vapi-inbound-assistant").TextContent()
	integCheck(t, "inbound assistant", err)
	assistant = strings.TrimSpace(assistant)

	state := page.GetByTestId("card-vapi-webhook-secret-state")
	integCheck(t, "own secret, not shown", integExpect.Locator(state).ToContainText("can be revealed once"))

	// The clipboard records what was copied (again after each load).
	stubClipboard := func() {
		t.Helper()
		_, err := page.Evaluate(`() => { window.copied = []; navigator.clipboard.writeText = t => { window.copied.push(t); return Promise.resolve(); }; }`)
		integCheck(t, "clipboard", err)
	}
	stubClipboard()
	copied := func() []string {
		t.Helper()
		v, err := page.Evaluate(`() => window.copied`)
		integCheck(t, "copied", err)
		var out []string
		for _, s := range v.([]any) {
			out = append(out, s.(string))
		}
		return out
	}

	// Reveal asks first; cancelling shows nothing.
	must(t, page.GetByTestId("card-vapi-webhook-secret-reveal").Click())
	confirm := page.GetByTestId("confirm-dialog")
	integCheck(t, "confirm dialog", integExpect.Locator(confirm).ToContainText("shown only once"))
	must(t, page.GetByTestId("confirm-cancel").Click())
	integCheck(t, "confirm closed", integExpect.Locator(confirm).ToBeHidden())
	integCheck(t, "nothing shown", integExpect.Locator(page.GetByTestId("card-vapi-webhook-secret-value")).ToHaveCount(0))

	must(t, page.GetByTestId("card-vapi-webhook-secret-reveal").Click())
	must(t, page.GetByTestId("confirm-accept").Click())
	value := page.GetByTestId("card-vapi-webhook-secret-value")
	integCheck(t, "the secret is shown", integExpect.Locator(value).ToBeVisible())
	secret, err := value.TextContent()
	integCheck(t, "secret", err)
	secret = strings.TrimSpace(secret)
	if len(secret) != 43 {
		t.Fatalf("the shown secret has %d characters", len(secret))
	}
	integCheck(t, "no second reveal", integExpect.Locator(page.GetByTestId("card-vapi-webhook-secret-reveal")).ToHaveCount(0))
	must(t, page.GetByTestId("card-vapi-webhook-secret-value-copy").Click())
	integCheck(t, "copied", integExpect.Locator(page.GetByTestId("card-vapi-webhook-secret-value-copy")).ToHaveText("Copied"))
	if c := copied(); len(c) != 1 || c[0] != secret {
		t.Errorf("the clipboard got %d values, want the secret", len(c))
	}
	if got := webhookWith(t, assistant, secret); got != http.StatusOK {
		t.Errorf("a webhook signed with the revealed secret: %d", got)
	}

	// After a reload: shown before, no reveal, no secret.
	_, err = page.Reload()
	integCheck(t, "reload", err)
	integCheck(t, "shown before", integExpect.Locator(page.GetByTestId("card-vapi-webhook-secret-state")).ToContainText("was shown on"))
	integCheck(t, "no reveal after a reload", integExpect.Locator(page.GetByTestId("card-vapi-webhook-secret-reveal")).ToHaveCount(0))
	html, err := page.Content()
	integCheck(t, "content", err)
	apptest.AssertNoSecret(t, "the dashboard after a reload", html, secret)
	stubClipboard()

	// Rotate asks first, then shows the new secret with a copy button.
	must(t, page.GetByTestId("card-vapi-webhook-secret-rotate").Click())
	integCheck(t, "rotate question", integExpect.Locator(confirm).ToContainText("Rotate the webhook secret?"))
	must(t, page.GetByTestId("confirm-accept").Click())
	integCheck(t, "rotated", integExpect.Locator(page.GetByTestId("card-vapi-result")).ToContainText("Webhook secret rotated"))
	integCheck(t, "previous accepted", integExpect.Locator(page.GetByTestId("card-vapi-webhook-secret-previous")).
		ToContainText("still accepted until"))
	next, err := page.GetByTestId("card-vapi-webhook-secret-value").TextContent()
	integCheck(t, "new secret", err)
	next = strings.TrimSpace(next)
	if len(next) != 43 || next == secret {
		t.Fatalf("the rotation showed a secret of %d characters (the same: %v)", len(next), next == secret)
	}
	must(t, page.GetByTestId("card-vapi-webhook-secret-value-copy").Click())
	integCheck(t, "copied again", integExpect.Locator(page.GetByTestId("card-vapi-webhook-secret-value-copy")).ToHaveText("Copied"))
	if c := copied(); len(c) != 1 || c[0] != next {
		t.Errorf("the clipboard did not get the new secret")
	}
	for name, s := range map[string]string{"new": next, "previous, within the grace period": secret} {
		if got := webhookWith(t, assistant, s); got != http.StatusOK {
			t.Errorf("a webhook signed with the %s secret: %d", name, got)
		}
	}
	if got := webhookWith(t, assistant, "another-secret-"+apptest.RandomHex(8)); got != http.StatusUnauthorized {
		t.Errorf("a webhook signed with another secret: %d", got)
	}
	v := integEntry(t, integStatus(t, page), "vapi")
	if w, _ := v["webhookSecret"].(map[string]any); w == nil || w["previousValidUntil"] == nil || w["own"] != true {
		t.Errorf("status after the rotation: %v", v["webhookSecret"])
	}

	_, err = page.Reload(playwright.PageReloadOptions{})
	integCheck(t, "reload", err)
	html, err = page.Content()
	integCheck(t, "content", err)
	apptest.AssertNoSecret(t, "the dashboard after the rotation", html, secret, next)
	checkA11y(t, page, "the Vapi card with a rotated webhook secret")
	apptest.AssertNoSecret(t, "the server log", serverLog.String(), secret, next)
}
