package integrations_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"byoc/app"
	"byoc/app/integrations"
	"byoc/app/providers/vapi"
	"byoc/app/sandbox"
)

// assertServers fails unless the stand-in holds exactly the assistants ids
// for key, each sending its events to BYOC's webhook with secret ("" for
// none).
func assertServers(t *testing.T, v *sandbox.Vapi, key string, ids []string, secret string) {
	t.Helper()
	as := v.Assistants(key)
	if got := assistantIDs(as); !slicesEqualSet(got, ids) {
		t.Fatalf("the stand-in holds %v, want %v", got, ids)
	}
	for _, a := range as {
		if a.Server == nil || a.Server.URL != publicURL+integrations.WebhookPath || a.Server.Secret != secret {
			t.Errorf("assistant %s server = %+v, want url %s%s and secret %q", a.ID, a.Server, publicURL,
				integrations.WebhookPath, secret)
		}
	}
}

func TestSaveVapiAgainUpdatesTheWebhookSettings(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	admin, _ := seedOrg(t, "Rotating Dental")
	key, secretA, secretB := vapiKey(), webhookSecret(), webhookSecret()

	first, err := e.svc.SaveVapi(ctx, admin, integrations.VapiInput{APIKey: key, WebhookSecret: secretA})
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{first.InboundAssistantID, first.OutboundAssistantID}
	assertServers(t, e.sb.Vapi, key, ids, secretA)

	t.Run("a new secret reaches the reused assistants", func(t *testing.T) {
		again, err := e.svc.SaveVapi(ctx, admin, integrations.VapiInput{APIKey: key, WebhookSecret: secretB})
		if err != nil {
			t.Fatal(err)
		}
		if again.InboundAssistantID != first.InboundAssistantID || again.OutboundAssistantID != first.OutboundAssistantID {
			t.Errorf("ids = %s, %s; want the same %v", again.InboundAssistantID, again.OutboundAssistantID, ids)
		}
		assertServers(t, e.sb.Vapi, key, ids, secretB)
		if n := e.mappingCount(t, admin.OrgID); n != 2 {
			t.Errorf("%d mappings, want 2", n)
		}
	})
	t.Run("saving without a secret clears it", func(t *testing.T) {
		again, err := e.svc.SaveVapi(ctx, admin, integrations.VapiInput{APIKey: key})
		if err != nil {
			t.Fatal(err)
		}
		if again.InboundAssistantID != first.InboundAssistantID || again.OutboundAssistantID != first.OutboundAssistantID {
			t.Errorf("ids = %s, %s; want the same %v", again.InboundAssistantID, again.OutboundAssistantID, ids)
		}
		assertServers(t, e.sb.Vapi, key, ids, "")
	})
	t.Run("a server URL changed in Vapi is pointed back at BYOC", func(t *testing.T) {
		client := vapi.New(e.urls.Vapi, e.urls.VapiEU, nil, 2*time.Second)
		if _, err := client.UpdateAssistantServer(ctx, app.VapiConfig{APIKey: app.NewSecret(key)}, first.InboundAssistantID,
			vapi.Server{URL: "https://old-host.example.com/api/webhooks/vapi", Secret: "whsec-stale-secret"}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.SaveVapi(ctx, admin, integrations.VapiInput{APIKey: key, WebhookSecret: secretA}); err != nil {
			t.Fatal(err)
		}
		assertServers(t, e.sb.Vapi, key, ids, secretA)
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

	first, err := e.svc.SaveVapi(ctx, admin, integrations.VapiInput{APIKey: key, WebhookSecret: secretA})
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{first.InboundAssistantID, first.OutboundAssistantID}

	failPatch.Store(true)
	_, err = e.svc.SaveVapi(ctx, admin, integrations.VapiInput{APIKey: key, WebhookSecret: secretB})
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
	if _, err := e.svc.SaveVapi(ctx, admin, integrations.VapiInput{APIKey: key, WebhookSecret: secretB}); err != nil {
		t.Fatal(err)
	}
	assertServers(t, sb.Vapi, key, ids, secretB)
}
