package integrations_test

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"byoc/app"
	"byoc/app/paths"
	"byoc/app/providers/vapi"
	"byoc/app/sandbox"
)

// assertServers fails unless the stand-in holds exactly the assistants ids
// for key, each sending its events to BYOC's webhook signed with an HMAC of
// secret (and no static secret).
func assertServers(t *testing.T, v *sandbox.Vapi, key string, ids []string, secret string) {
	t.Helper()
	as := v.Assistants(key)
	if got := assistantIDs(as); !slicesEqualSet(got, ids) {
		t.Fatalf("the stand-in holds %v, want %v", got, ids)
	}
	for _, a := range as {
		if a.Server == nil || a.Server.URL != publicURL+paths.Webhooks || a.Server.Secret != "" {
			t.Errorf("assistant %s server = %+v, want url %s%s and no static secret", a.ID, a.Server, publicURL, paths.Webhooks)
		}
		if s, _ := v.Signing(key, a.ID); s != (sandbox.VapiSigning{Mode: "hmac", Secret: secret}) {
			t.Errorf("assistant %s signs with %+v, want an HMAC of secret %q", a.ID, s, secret)
		}
	}
}

// assertOneSigningCredential fails unless the account of key holds exactly
// one credential: each save replaces the signing credential and deletes
// the one it replaced.
func assertOneSigningCredential(t *testing.T, v *sandbox.Vapi, key string) {
	t.Helper()
	if cs := v.Credentials(key); len(cs) != 1 {
		t.Errorf("the account holds %d signing credentials, want 1", len(cs))
	}
}

func TestSaveVapiAgainUpdatesTheWebhookSettings(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	admin, _ := seedOrg(t, "Rotating Dental")
	key, secretA, secretB := vapiKey(), webhookSecret(), webhookSecret()

	first, err := e.svc.Save(ctx, admin, app.Vapi, app.Values{"apiKey": key, "webhookSecret": secretA})
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{first.InboundAssistantID, first.OutboundAssistantID}
	assertServers(t, e.sb.Vapi, key, ids, secretA)

	t.Run("a new secret reaches the reused assistants", func(t *testing.T) {
		again, err := e.svc.Save(ctx, admin, app.Vapi, app.Values{"apiKey": key, "webhookSecret": secretB})
		if err != nil {
			t.Fatal(err)
		}
		if again.InboundAssistantID != first.InboundAssistantID || again.OutboundAssistantID != first.OutboundAssistantID {
			t.Errorf("ids = %s, %s; want the same %v", again.InboundAssistantID, again.OutboundAssistantID, ids)
		}
		assertServers(t, e.sb.Vapi, key, ids, secretB)
		assertOneSigningCredential(t, e.sb.Vapi, key)
		if n := e.mappingCount(t, admin.OrgID); n != 2 {
			t.Errorf("%d mappings, want 2", n)
		}
	})
	t.Run("saving without a secret keeps the stored one", func(t *testing.T) {
		again, err := e.svc.Save(ctx, admin, app.Vapi, app.Values{"apiKey": key})
		if err != nil {
			t.Fatal(err)
		}
		if again.InboundAssistantID != first.InboundAssistantID || again.OutboundAssistantID != first.OutboundAssistantID {
			t.Errorf("ids = %s, %s; want the same %v", again.InboundAssistantID, again.OutboundAssistantID, ids)
		}
		assertServers(t, e.sb.Vapi, key, ids, secretB)
		if got := storedWebhookSecret(t, e, admin.OrgID); got != secretB {
			t.Errorf("stored webhook secret = %q, want the one saved before", got)
		}
	})
	t.Run("a server URL changed in Vapi is pointed back at BYOC", func(t *testing.T) {
		client := vapi.New(e.urls.Vapi, e.urls.VapiEU, nil, 2*time.Second)
		if _, err := client.UpdateAssistantServer(ctx, app.VapiConfig{APIKey: app.NewSecret(key)}, first.InboundAssistantID,
			vapi.Server{URL: "https://old-host.example.com/api/webhooks/vapi", Secret: "whsec-stale-secret"}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.Save(ctx, admin, app.Vapi, app.Values{"apiKey": key, "webhookSecret": secretA}); err != nil {
			t.Fatal(err)
		}
		assertServers(t, e.sb.Vapi, key, ids, secretA)
		assertOneSigningCredential(t, e.sb.Vapi, key)
	})
	e.assertNoLeak(t, admin.OrgID, []string{key, secretA, secretB})
}

func TestSaveVapiFailsWhenTheUpdateFails(t *testing.T) {
	ctx := context.Background()
	sb := sandbox.New()
	var failPatch atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPatch && failPatch.Load() {
			http.Error(w, `{"message":"Service Unavailable","statusCode":503}`, http.StatusServiceUnavailable)
			return
		}
		sb.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	urls := sb.BaseURLs(srv.URL)
	e := newEnv(t, func(c *envConfig) { c.urls = &urls })
	admin, _ := seedOrg(t, "Flaky Dental")
	key, secretA, secretB := vapiKey(), webhookSecret(), webhookSecret()

	first, err := e.svc.Save(ctx, admin, app.Vapi, app.Values{"apiKey": key, "webhookSecret": secretA})
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{first.InboundAssistantID, first.OutboundAssistantID}

	failPatch.Store(true)
	_, err = e.svc.Save(ctx, admin, app.Vapi, app.Values{"apiKey": key, "webhookSecret": secretB})
	wantCode(t, err, app.EProviderUnavailable)
	if msg := app.ErrorMessage(err); msg == "" {
		t.Error("the error has no message")
	}
	// Nothing changed: Vapi still has secret A, and so do the stored
	// credentials, which keep matching what Vapi sends.
	assertServers(t, sb.Vapi, key, ids, secretA)
	stored, err := e.creds.Get(ctx, admin.OrgID, app.Vapi)
	if err != nil {
		t.Fatal(err)
	}
	if got := stored.(app.VapiConfig).WebhookSecret.Reveal(); got != secretA {
		t.Errorf("stored webhook secret = %q, want the old one", got)
	}
	if in, out := mappedIDs(t, e, admin.OrgID); in != first.InboundAssistantID || out != first.OutboundAssistantID {
		t.Errorf("mapped %s, %s; want %v", in, out, ids)
	}
	e.assertNoLeak(t, admin.OrgID, []string{key, secretA, secretB}, err)

	failPatch.Store(false)
	if _, err := e.svc.Save(ctx, admin, app.Vapi, app.Values{"apiKey": key, "webhookSecret": secretB}); err != nil {
		t.Fatal(err)
	}
	assertServers(t, sb.Vapi, key, ids, secretB)
}

// storedWebhookSecret returns the webhook secret stored with the org's Vapi
// credentials.
func storedWebhookSecret(t *testing.T, e *env, orgID string) string {
	t.Helper()
	stored, err := e.creds.Get(context.Background(), orgID, app.Vapi)
	if err != nil {
		t.Fatal(err)
	}
	return stored.(app.VapiConfig).WebhookSecret.Reveal()
}

func TestSaveVapiWebhookSecretOfItsOwn(t *testing.T) {
	// An org that gives no webhook secret gets one of its own, so its
	// webhooks never depend on a secret shared with other orgs.
	ctx := context.Background()
	e := newEnv(t)
	adminA, _ := seedOrg(t, "Secretless Dental")
	adminB, _ := seedOrg(t, "Other Secretless Dental")
	keyA, keyB := vapiKey(), vapiKey()

	first, err := e.svc.Save(ctx, adminA, app.Vapi, app.Values{"apiKey": keyA})
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{first.InboundAssistantID, first.OutboundAssistantID}
	generated := storedWebhookSecret(t, e, adminA.OrgID)
	if raw, err := base64.RawURLEncoding.DecodeString(generated); err != nil || len(raw) != 32 {
		t.Fatalf("generated secret %q is not 32 random bytes in base64url (%v)", generated, err)
	}
	assertServers(t, e.sb.Vapi, keyA, ids, generated)
	if got := first.Status.Details["webhookSecret"]; got != "set" {
		t.Errorf("status shows the webhook secret as %q, want \"set\"", got)
	}

	t.Run("another org gets another secret", func(t *testing.T) {
		if _, err := e.svc.Save(ctx, adminB, app.Vapi, app.Values{"apiKey": keyB}); err != nil {
			t.Fatal(err)
		}
		if other := storedWebhookSecret(t, e, adminB.OrgID); other == generated || other == "" {
			t.Errorf("org B's secret = %q, want its own", other)
		}
	})
	t.Run("saving again keeps it", func(t *testing.T) {
		if _, err := e.svc.Save(ctx, adminA, app.Vapi, app.Values{"apiKey": keyA}); err != nil {
			t.Fatal(err)
		}
		if got := storedWebhookSecret(t, e, adminA.OrgID); got != generated {
			t.Errorf("stored secret = %q, want the generated %q", got, generated)
		}
		assertServers(t, e.sb.Vapi, keyA, ids, generated)
	})
	t.Run("a given secret replaces it and is kept in turn", func(t *testing.T) {
		given := webhookSecret()
		if _, err := e.svc.Save(ctx, adminA, app.Vapi, app.Values{"apiKey": keyA, "webhookSecret": given}); err != nil {
			t.Fatal(err)
		}
		assertServers(t, e.sb.Vapi, keyA, ids, given)
		if _, err := e.svc.Save(ctx, adminA, app.Vapi, app.Values{"apiKey": keyA}); err != nil {
			t.Fatal(err)
		}
		assertServers(t, e.sb.Vapi, keyA, ids, given)
		if got := storedWebhookSecret(t, e, adminA.OrgID); got != given {
			t.Errorf("stored secret = %q, want the given one", got)
		}
	})
	t.Run("after a disconnect a new one is made", func(t *testing.T) {
		if _, err := e.svc.Disconnect(ctx, adminA, app.Vapi); err != nil {
			t.Fatal(err)
		}
		res, err := e.svc.Save(ctx, adminA, app.Vapi, app.Values{"apiKey": keyA})
		if err != nil {
			t.Fatal(err)
		}
		fresh := storedWebhookSecret(t, e, adminA.OrgID)
		if fresh == "" || fresh == generated {
			t.Errorf("secret after reconnecting = %q", fresh)
		}
		for _, a := range e.sb.Vapi.Assistants(keyA) {
			if s, _ := e.sb.Vapi.Signing(keyA, a.ID); (a.ID == res.InboundAssistantID || a.ID == res.OutboundAssistantID) &&
				s != (sandbox.VapiSigning{Mode: "hmac", Secret: fresh}) {
				t.Errorf("assistant %s signs with %+v, want an HMAC of the new secret", a.ID, s)
			}
		}
	})
	e.assertNoLeak(t, adminA.OrgID, []string{keyA, keyB, generated})
}
