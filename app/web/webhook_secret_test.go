package web_test

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"byoc/app"
	"byoc/app/apptest"
	"byoc/app/integrations"
)

const (
	rotatePath = "/api/integrations/vapi/webhook-secret/rotate"
	revealPath = "/api/integrations/vapi/webhook-secret/reveal"
)

// withClock gives every service of the server clock's time.
func withClock(clock *apptest.Clock) envOption {
	return func(s *envSetup) { s.opts.Now = clock.Now }
}

// signedWebhook posts an event of the assistant signed with secret at now,
// as Vapi's HMAC credential signs it, and returns the status.
func (e *env) signedWebhook(assistant, secret string) int {
	e.t.Helper()
	body := vapiEvent(assistant, "speech-update")
	stamp := strconv.FormatInt(time.Now().UnixMilli(), 10)
	return e.do(request(http.MethodPost, "/api/webhooks/vapi", body,
		"X-Signature", apptest.VapiSignature(secret, stamp, []byte(body)), "X-Timestamp", stamp)).StatusCode
}

// vapiSigned posts an event of the assistant with the headers the Vapi
// stand-in sends for it now (its current signing credential).
func (e *env) vapiSigned(key, assistant string) int {
	e.t.Helper()
	body := vapiEvent(assistant, "speech-update")
	h, err := e.sb.Vapi.EventHeaders(key, assistant, []byte(body), time.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	var headers []string
	for k := range h {
		headers = append(headers, k, h.Get(k))
	}
	return e.do(request(http.MethodPost, "/api/webhooks/vapi", body, headers...)).StatusCode
}

// audits returns the org's audit actions with their outcomes, oldest first.
func (e *env) audits(orgID string) []string {
	e.t.Helper()
	rows, err := e.db.Pool.Query(context.Background(),
		`select action || ':' || outcome from audit_log where org_id = $1 order by id`, orgID)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

func countOf(list []string, item string) int {
	n := 0
	for _, s := range list {
		if s == item {
			n++
		}
	}
	return n
}

// TestWebhookSecretRotateAndReveal: an admin reveals the org's webhook
// secret once; a rotation answers a new one once, reaches both assistants
// at Vapi, and leaves the old secret accepted for the grace period; the
// status API and the card say so; everything is audited and no secret is
// logged.
func TestWebhookSecretRotateAndReveal(t *testing.T) {
	e := newEnv(t)
	secret := "whsec-" + apptest.RandomHex(16)
	b, token, key, inbound := connectVapiKey(t, e, secret)
	orgID := orgOf(t, e, key)

	ws := func() map[string]any {
		t.Helper()
		w, ok := entry(t, b.status(token), "vapi")["webhookSecret"].(map[string]any)
		if !ok {
			t.Fatalf("the Vapi status has no webhookSecret")
		}
		return w
	}
	if w := ws(); w["own"] != true || w["revealedAt"] != nil || w["previousValidUntil"] != nil {
		t.Fatalf("before anything: %v", w)
	}

	t.Run("reveal once", func(t *testing.T) {
		res := b.api(http.MethodPost, revealPath, nil, token)
		if res.StatusCode != http.StatusOK || envelopeData(t, res)["secret"] != secret {
			t.Fatalf("%d %s", res.StatusCode, res.body)
		}
		if cc := res.Header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("Cache-Control %q", cc)
		}
		if w := ws(); w["revealedAt"] == nil {
			t.Errorf("after the reveal: %v", w)
		}
		again := b.api(http.MethodPost, revealPath, nil, token)
		if again.StatusCode != http.StatusConflict || strings.Contains(again.body, secret) {
			t.Fatalf("a second reveal: %d %s", again.StatusCode, again.body)
		}
		if !strings.Contains(envelopeError(t, again)["message"].(string), "Rotate") {
			t.Errorf("the refusal does not say how to get a new one: %s", again.body)
		}
		// Both reveals are in the audit trail, under a filter of their own:
		// the refused one (newest) and the one that showed the secret.
		audit := b.api(http.MethodGet, "/api/audit?action=credentials.reveal_secret", nil, token)
		if audit.StatusCode != http.StatusOK {
			t.Fatalf("audit of reveals: %d %s", audit.StatusCode, audit.body)
		}
		entries := envelopeData(t, audit)["entries"].([]any)
		if len(entries) != 2 || entries[0].(map[string]any)["outcome"] != "failure" ||
			entries[1].(map[string]any)["outcome"] != "success" || strings.Contains(audit.body, secret) {
			t.Fatalf("audit of reveals: %s", audit.body)
		}
	})

	var next string
	t.Run("rotate", func(t *testing.T) {
		before := time.Now()
		res := b.api(http.MethodPost, rotatePath, nil, token)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("%d %s", res.StatusCode, res.body)
		}
		d := envelopeData(t, res)
		next, _ = d["secret"].(string)
		if len(next) < 32 || next == secret {
			t.Fatalf("new secret %q", next)
		}
		until, err := time.Parse(time.RFC3339Nano, d["previousValidUntil"].(string))
		if err != nil || until.Before(before.Add(integrations.DefaultWebhookSecretGrace-time.Minute)) ||
			until.After(time.Now().Add(integrations.DefaultWebhookSecretGrace)) {
			t.Errorf("previousValidUntil %v (%v), want about 24 h from now", d["previousValidUntil"], err)
		}
		if w := ws(); w["previousValidUntil"] == nil || w["revealedAt"] == nil {
			t.Errorf("after the rotation: %v", w)
		}
		// Both assistants sign with the new secret at Vapi.
		for _, a := range e.sb.Vapi.Assistants(key) {
			if s, _ := e.sb.Vapi.Signing(key, a.ID); s.Mode != "hmac" || s.Secret != next {
				t.Errorf("assistant %s signs with %+v, want the new secret", a.Name, s.Mode)
			}
		}
		if n := len(e.sb.Vapi.Credentials(key)); n != 2 {
			t.Errorf("the Vapi account holds %d signing credentials, want the new one and the one in grace", n)
		}
	})
	t.Run("both secrets verify within the grace period", func(t *testing.T) {
		if got := e.vapiSigned(key, inbound); got != http.StatusOK {
			t.Errorf("an event signed by Vapi after the rotation: %d", got)
		}
		if got := e.signedWebhook(inbound, secret); got != http.StatusOK {
			t.Errorf("an event signed with the previous secret: %d", got)
		}
		if got := e.signedWebhook(inbound, "whsec-"+apptest.RandomHex(16)); got != http.StatusUnauthorized {
			t.Errorf("an event signed with another secret: %d", got)
		}
	})
	t.Run("the rotation was the new secret's one showing", func(t *testing.T) {
		res := b.api(http.MethodPost, revealPath, nil, token)
		if res.StatusCode != http.StatusConflict || strings.Contains(res.body, next) {
			t.Fatalf("%d %s", res.StatusCode, res.body)
		}
	})
	t.Run("htmx: the card shows the new secret with a copy button", func(t *testing.T) {
		res := b.hx(http.MethodPost, rotatePath, nil, token)
		if htmxStatus(t, res, true) != http.StatusOK {
			t.Fatalf("%d %s", res.StatusCode, res.body)
		}
		d := res.doc(t)
		shown := strings.TrimSpace(testid(d, "card-vapi-webhook-secret-value").Text())
		if len(shown) < 32 || shown == next || testid(d, "card-vapi-webhook-secret-value-copy").Length() != 1 {
			t.Errorf("the card shows %q", shown)
		}
		if testid(d, "card-vapi-webhook-secret-previous").Length() != 1 || testid(d, "card-vapi-webhook-secret-reveal").Length() != 0 {
			t.Errorf("the card does not say the previous secret is accepted, or offers a reveal:\n%s", res.body)
		}
		if res.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("Cache-Control %q", res.Header.Get("Cache-Control"))
		}
		// The dashboard never shows a secret again.
		page := b.get("/dashboard/integrations")
		apptest.AssertNoSecret(t, "the dashboard", page.body, secret, next, shown)
		if got := e.signedWebhook(inbound, next); got != http.StatusOK {
			t.Errorf("the secret the rotation before replaced, within its grace: %d", got)
		}
		if got := e.signedWebhook(inbound, secret); got != http.StatusUnauthorized {
			t.Errorf("the secret two rotations back: %d, want 401 (only one previous secret)", got)
		}
		if n := len(e.sb.Vapi.Credentials(key)); n != 2 {
			t.Errorf("the Vapi account holds %d signing credentials, want 2 (the oldest deleted)", n)
		}
	})
	t.Run("audited, never logged", func(t *testing.T) {
		a := e.audits(orgID)
		if countOf(a, integrations.ActionRotateSecret+":success") != 2 || countOf(a, integrations.ActionRevealSecret+":success") != 1 ||
			countOf(a, integrations.ActionRevealSecret+":failure") != 2 {
			t.Errorf("audit log %v", a)
		}
		apptest.AssertNoSecret(t, "log", e.log.String(), secret, next)
	})
}

// orgOf returns the org whose Vapi account key is.
func orgOf(t *testing.T, e *env, key string) string {
	t.Helper()
	as := e.sb.Vapi.Assistants(key)
	if len(as) == 0 {
		t.Fatal("no assistants for the key")
	}
	var orgID string
	if err := e.db.Pool.QueryRow(context.Background(),
		`select org_id::text from assistant_org_mapping where vapi_assistant_id = $1`, as[0].ID).Scan(&orgID); err != nil {
		t.Fatal(err)
	}
	return orgID
}

// TestWebhookSecretRefused: a member, an org without Vapi, another org and
// Vapi refusing the change: each is refused, changes nothing, and says why.
func TestWebhookSecretRefused(t *testing.T) {
	e := newEnv(t)
	secret := "whsec-" + apptest.RandomHex(16)
	b, token, key, inbound := connectVapiKey(t, e, secret)
	orgID := orgOf(t, e, key)

	unchanged := func(t *testing.T) {
		t.Helper()
		if got := e.signedWebhook(inbound, secret); got != http.StatusOK {
			t.Errorf("the org's secret: %d, want 200", got)
		}
		if got := e.vapiSigned(key, inbound); got != http.StatusOK {
			t.Errorf("an event signed by Vapi: %d, want 200", got)
		}
		if n := len(e.sb.Vapi.Credentials(key)); n != 1 {
			t.Errorf("the Vapi account holds %d signing credentials, want 1", n)
		}
	}

	t.Run("a member", func(t *testing.T) {
		mb, mtoken := e.member(orgID)
		for _, path := range []string{rotatePath, revealPath} {
			res := mb.api(http.MethodPost, path, nil, mtoken)
			if res.StatusCode != http.StatusForbidden || strings.Contains(res.body, secret) {
				t.Errorf("%s: %d %s", path, res.StatusCode, res.body)
			}
		}
		unchanged(t)
		if a := e.audits(orgID); countOf(a, integrations.ActionRotateSecret+":failure") != 1 {
			t.Errorf("audit log %v", a)
		}
	})
	t.Run("another org", func(t *testing.T) {
		ob, otoken, _ := e.admin()
		for _, path := range []string{rotatePath, revealPath} {
			if res := ob.api(http.MethodPost, path, nil, otoken); res.StatusCode != http.StatusNotFound ||
				envelopeError(t, res)["code"] != "not_configured" {
				t.Errorf("%s without Vapi: %d %s", path, res.StatusCode, res.body)
			}
		}
		okey := vapiKey()
		ob.saveVapi(otoken, okey)
		res := ob.api(http.MethodPost, rotatePath, nil, otoken)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("%d %s", res.StatusCode, res.body)
		}
		other := envelopeData(t, res)["secret"].(string)
		if got := e.signedWebhook(inbound, other); got != http.StatusUnauthorized {
			t.Errorf("the other org's new secret on this org's assistant: %d, want 401", got)
		}
		unchanged(t)
	})
	t.Run("Vapi refuses: an assistant is gone", func(t *testing.T) {
		as := e.sb.Vapi.Assistants(key)
		var outbound string
		for _, a := range as {
			if a.ID != inbound {
				outbound = a.ID
			}
		}
		deleteAssistant(t, e, key, outbound)
		res := b.api(http.MethodPost, rotatePath, nil, token)
		if res.StatusCode != http.StatusConflict {
			t.Fatalf("%d %s", res.StatusCode, res.body)
		}
		if msg := envelopeError(t, res)["message"].(string); !strings.Contains(msg, "not rotated") || !strings.Contains(msg, outbound) {
			t.Errorf("message %q does not say why", msg)
		}
		// The inbound assistant was changed first and is pointed back.
		unchanged(t)
		if s, _ := e.sb.Vapi.Signing(key, inbound); s.Secret != secret {
			t.Errorf("the inbound assistant signs with another secret after the refusal")
		}
		hx := b.hx(http.MethodPost, rotatePath, nil, token)
		if htmxStatus(t, hx, true) != http.StatusConflict || !strings.Contains(testid(hx.doc(t), "card-vapi-result").Text(), "not rotated") {
			t.Errorf("htmx: %d %s", hx.StatusCode, hx.body)
		}
		if a := e.audits(orgID); countOf(a, integrations.ActionRotateSecret+":failure") != 3 {
			t.Errorf("audit log %v", a)
		}
	})
}

// deleteAssistant deletes an assistant at the Vapi stand-in, as the org
// would in Vapi's dashboard.
func deleteAssistant(t *testing.T, e *env, key, id string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodDelete, e.setup.cfg.URLs.Vapi+"/assistant/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+key)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("delete assistant: %s", res.Status)
	}
}

// TestWebhookSecretGraceByClock: the grace period runs from the rotation
// by the services' clock; a rotation made a grace period ago leaves the
// old secret refused now.
func TestWebhookSecretGraceByClock(t *testing.T) {
	clock := apptest.NewClock(time.Now())
	e := newEnv(t, withClock(clock))
	secret := "whsec-" + apptest.RandomHex(16)
	b, token, _, inbound := connectVapiKey(t, e, secret)
	// The rotation happens a grace period and a minute ago.
	clock.Set(time.Now().Add(-integrations.DefaultWebhookSecretGrace - time.Minute))
	res := b.api(http.MethodPost, rotatePath, nil, token)
	clock.Set(time.Now())
	if res.StatusCode != http.StatusOK {
		t.Fatalf("%d %s", res.StatusCode, res.body)
	}
	next := envelopeData(t, res)["secret"].(string)
	if got := e.signedWebhook(inbound, secret); got != http.StatusUnauthorized {
		t.Errorf("the old secret after its grace period: %d, want 401", got)
	}
	if got := e.signedWebhook(inbound, next); got != http.StatusOK {
		t.Errorf("the new secret: %d, want 200", got)
	}
	if w := entry(t, b.status(token), "vapi")["webhookSecret"].(map[string]any); w["previousValidUntil"] != nil {
		t.Errorf("the status still names a previous secret: %v", w)
	}
}

// TestWebhookSecretTwoInstances: a rotation through one instance reaches
// the other at once (through the database's notification): there the new
// secret is accepted and the old one too, within the grace period.
func TestWebhookSecretTwoInstances(t *testing.T) {
	first := newEnv(t)
	second := first.instance()
	for _, e := range []*env{first, second} {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); e.sys.ListenInvalidations(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
	}
	secret := "whsec-" + apptest.RandomHex(16)
	b, token, _, inbound := connectVapiKey(t, first, secret)
	// The second instance holds the old secret warm, and hears the first's
	// changes: a change made through the first drops its entry.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if got := second.signedWebhook(inbound, secret); got != http.StatusOK {
			t.Fatalf("the second instance refused the org's secret: %d", got)
		}
		if res := b.api(http.MethodPost, webhookSigningPath, map[string]bool{"hmacOnly": true}, token); res.StatusCode != http.StatusOK {
			t.Fatalf("webhook signing: %d %s", res.StatusCode, res.body)
		}
		time.Sleep(20 * time.Millisecond)
		if second.sys.Webhooks.CacheStats().Secrets.Items == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the second instance never heard the first's changes")
		}
	}
	if got := second.signedWebhook(inbound, secret); got != http.StatusOK {
		t.Fatalf("the second instance refused the org's secret: %d", got)
	}
	res := b.api(http.MethodPost, rotatePath, nil, token)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("%d %s", res.StatusCode, res.body)
	}
	next := envelopeData(t, res)["secret"].(string)
	began := time.Now()
	for second.signedWebhook(inbound, next) != http.StatusOK {
		if time.Since(began) > 5*time.Second {
			t.Fatal("the second instance still refused the new secret 5 s after the rotation")
		}
		time.Sleep(time.Millisecond)
	}
	t.Logf("the second instance accepted the new secret %v after the rotation answered", time.Since(began))
	if got := second.signedWebhook(inbound, secret); got != http.StatusOK {
		t.Errorf("the old secret on the second instance within the grace period: %d", got)
	}
}

// TestSaveAfterARotationElsewhereKeepsItsSecret: an instance whose cache
// still holds the Vapi config from before another instance's rotation (it
// has not heard the change yet) saves again without a webhook secret: the
// save starts from the stored config, so the rotated secret stays and the
// one before it is not written back.
func TestSaveAfterARotationElsewhereKeepsItsSecret(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	other := e.instance() // no listeners: neither hears the other's changes
	b, token, orgID := e.admin()
	key := vapiKey()
	first := "whsec-" + apptest.RandomHex(16)
	if res := b.api(http.MethodPost, "/api/integrations/vapi", map[string]string{"apiKey": key, "webhookSecret": first}, token); res.StatusCode != http.StatusOK {
		t.Fatalf("save: %d %s", res.StatusCode, res.body)
	}
	if _, err := e.creds.Get(ctx, orgID, app.Vapi); err != nil { // e's cache holds the first secret
		t.Fatal(err)
	}
	elsewhere := &browser{e: other, cookies: b.cookies}
	res := elsewhere.api(http.MethodPost, rotatePath, nil, token)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("rotate on the other instance: %d %s", res.StatusCode, res.body)
	}
	rotated, _ := envelopeData(t, res)["secret"].(string)
	if res := b.api(http.MethodPost, "/api/integrations/vapi", map[string]string{"apiKey": key}, token); res.StatusCode != http.StatusOK {
		t.Fatalf("save again: %d %s", res.StatusCode, res.body)
	}
	stored, err := e.creds.VapiFresh(ctx, orgID)
	if err != nil {
		t.Fatal(err)
	}
	if got := stored.WebhookSecret.Reveal(); got != rotated || got == first {
		t.Fatal("the save wrote back the secret the rotation replaced")
	}
}
