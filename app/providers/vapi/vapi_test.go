package vapi_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"byoc/app"
	"byoc/app/apptest"
	"byoc/app/providers/vapi"
	"byoc/app/sandbox"
)

const timeout = 300 * time.Millisecond

func newClient(t *testing.T) (*vapi.Client, *sandbox.Sandbox) {
	t.Helper()
	sb := sandbox.New()
	srv := httptest.NewServer(sb.Handler())
	t.Cleanup(srv.Close)
	urls := sb.BaseURLs(srv.URL)
	return vapi.New(urls.Vapi, urls.VapiEU, srv.Client(), timeout), sb
}

func cfg(key string, region app.VapiRegion) app.VapiConfig {
	return app.VapiConfig{APIKey: app.NewSecret(key), Region: region}
}

func TestVerify(t *testing.T) {
	client, _ := newClient(t)
	tests := []struct {
		name     string
		key      string
		region   app.VapiRegion
		wantCode string
	}{
		{"valid US key", "3f1c2b9a-valid-us-key", app.VapiUS, ""},
		{"empty region means US", "3f1c2b9a-us-key", "", ""},
		{"valid EU key", "eu-7d2f0c11-key", app.VapiEU, ""},
		{"invalid key", "3f1c-invalid-key", app.VapiUS, app.EVerificationFailed},
		{"US key in EU", "3f1c2b9a-us-key", app.VapiEU, app.EVerificationFailed},
		{"EU key in US", "eu-7d2f0c11-key", app.VapiUS, app.EVerificationFailed},
		{"provider down", "key-down-1234", app.VapiUS, app.EProviderUnavailable},
		{"rate limited", "key-ratelimit-1234", app.VapiUS, app.EProviderUnavailable},
		{"slow provider", "key-slow-1234", app.VapiUS, app.EProviderUnavailable},
		{"empty key", "", app.VapiUS, app.EValidation},
		{"unknown region", "3f1c2b9a-us-key", "mars", app.EValidation},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			v, err := client.Verify(context.Background(), cfg(tt.key, tt.region))
			if got := app.ErrorCode(err); got != tt.wantCode {
				t.Fatalf("code = %q, want %q (err %v)", got, tt.wantCode, err)
			}
			if time.Since(start) > 5*timeout {
				t.Errorf("Verify took %v, want it bounded by the %v timeout", time.Since(start), timeout)
			}
			apptest.AssertNoSecret(t, "the error", fmt.Sprint(err), tt.key)
			if err == nil && (v.Limited || v.Detail == "") {
				t.Errorf("Verification = %+v, want full access with a detail", v)
			}
			if strings.Contains(v.Detail, tt.key) && tt.key != "" {
				t.Errorf("detail %q contains the key", v.Detail)
			}
		})
	}
}

func TestVerifyMessages(t *testing.T) {
	client, _ := newClient(t)
	_, err := client.Verify(context.Background(), cfg("invalid-key", app.VapiUS))
	if msg := app.ErrorMessage(err); !strings.HasPrefix(msg, "Vapi rejected the API key (401 Unauthorized).") {
		t.Errorf("message = %q", msg)
	}
	_, err = client.Verify(context.Background(), cfg("slow-key", app.VapiUS))
	if msg := app.ErrorMessage(err); msg != "Vapi could not be reached (timed out after 300ms). Try again." {
		t.Errorf("message = %q", msg)
	}
}

func TestVerifyUnreachable(t *testing.T) {
	u := apptest.ClosedURL(t)
	client := vapi.New(u, u, nil, timeout)
	_, err := client.Verify(context.Background(), cfg("3f1c2b9a-us-key", app.VapiUS))
	if app.ErrorCode(err) != app.EProviderUnavailable {
		t.Fatalf("err = %v, want %s", err, app.EProviderUnavailable)
	}
	if msg := app.ErrorMessage(err); msg != "Vapi could not be reached (connection refused). Try again." {
		t.Errorf("message = %q", msg)
	}
	apptest.AssertNoSecret(t, "the error", fmt.Sprint(err), "3f1c2b9a-us-key")
}

func TestAssistantsArePerKey(t *testing.T) {
	client, sb := newClient(t)
	ctx := context.Background()
	orgA, orgEU := cfg("key-org-a", app.VapiUS), cfg("key-org-eu", app.VapiEU)

	spec := vapi.AssistantSpec{
		Name:         "Reception",
		FirstMessage: "Hello, how can I help?",
		SystemPrompt: "You are a receptionist.",
		Voice:        &vapi.Voice{Provider: "11labs", VoiceID: "21m00Tcm4TlvDq8ikWAM"},
		ServerURL:    "https://byoc.example.com/api/webhooks/vapi",
		ServerSecret: "whsec-org-a",
	}
	a, err := client.CreateAssistant(ctx, orgA, spec)
	if err != nil {
		t.Fatalf("CreateAssistant: %v", err)
	}
	if a.ID == "" || a.OrgID == "" || a.Name != spec.Name || a.ServerURL != spec.ServerURL {
		t.Errorf("created = %+v", a)
	}
	if _, err := client.CreateAssistant(ctx, orgEU, vapi.AssistantSpec{Name: "EU desk"}); err != nil {
		t.Fatalf("CreateAssistant EU: %v", err)
	}

	stored := sb.Vapi.Assistants("key-org-a")
	if len(stored) != 1 || stored[0].Server == nil || stored[0].Server.Secret != "whsec-org-a" ||
		strings.Join(stored[0].ServerMessages, ",") != "status-update,end-of-call-report,tool-calls" {
		t.Errorf("the stand-in holds %+v", stored)
	}
	if len(stored) != 1 || stored[0].ID != a.ID || stored[0].OrgID != a.OrgID {
		t.Errorf("the stand-in holds %+v under the org's key, want the created %+v", stored, a)
	}
	if eu, us := sb.VapiEU.Assistants("key-org-eu"), sb.Vapi.Assistants("key-org-eu"); len(eu) != 1 || eu[0].Name != "EU desk" || len(us) != 0 {
		t.Errorf("the EU stand-in holds %+v and the US one %+v under the EU key, want the EU desk in the EU only", eu, us)
	}
}

func TestCreateAssistantNameLimit(t *testing.T) {
	client, sb := newClient(t)
	tests := []struct {
		name     string
		aName    string
		wantCode string
	}{
		{"40 characters", strings.Repeat("a", 40), ""},
		{"40 multi-byte characters", strings.Repeat("é", 40), ""},
		{"41 characters", strings.Repeat("a", 41), app.EValidation},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := "key-" + tt.name
			_, err := client.CreateAssistant(context.Background(), cfg(key, app.VapiUS), vapi.AssistantSpec{Name: tt.aName})
			if got := app.ErrorCode(err); got != tt.wantCode {
				t.Fatalf("code = %q, want %q (err %v)", got, tt.wantCode, err)
			}
			wantStored := 1
			if tt.wantCode != "" {
				wantStored = 0
				if app.ErrorFields(err)["name"] == "" {
					t.Errorf("fields = %v, want a message for name", app.ErrorFields(err))
				}
			}
			if n := len(sb.Vapi.Assistants(key)); n != wantStored {
				t.Errorf("stand-in holds %d assistants, want %d", n, wantStored)
			}
		})
	}
}

func TestCreateAssistantRefusedByVapi(t *testing.T) {
	client, _ := newClient(t)
	_, err := client.CreateAssistant(context.Background(), cfg("key-a", app.VapiUS),
		vapi.AssistantSpec{Name: "Desk", ServerURL: "not a url", ServerSecret: "s3cret-value"})
	if app.ErrorCode(err) != app.EValidation {
		t.Fatalf("err = %v, want %s", err, app.EValidation)
	}
	if msg := app.ErrorMessage(err); msg != "Vapi refused the assistant: server.url must be a URL address." {
		t.Errorf("message = %q", msg)
	}
	apptest.AssertNoSecret(t, "the error", fmt.Sprint(err), "key-a", "s3cret-value")
}

// A refusal that repeats the key in some other form shows none of it.
func TestRefusalEchoingTheKey(t *testing.T) {
	client, _ := newClient(t)
	const key = "vk_echo_4f9a0c3b7e21d5a8"
	ctx := context.Background()
	_, err := client.CreateAssistant(ctx, cfg(key, app.VapiUS), vapi.AssistantSpec{Name: "Desk"})
	_, uerr := client.UpdateAssistantServer(ctx, cfg(key, app.VapiUS), "asst-1", vapi.Server{URL: "https://x.example.com/hook"})
	for _, err := range []error{err, uerr} {
		if app.ErrorCode(err) != app.EValidation || !strings.HasPrefix(app.ErrorMessage(err), "Vapi refused the assistant") {
			t.Errorf("err = %v, want %s", err, app.EValidation)
		}
		apptest.AssertNoFragment(t, "the error", fmt.Sprint(err), key)
	}
}

func TestUpdateAssistantServer(t *testing.T) {
	client, sb := newClient(t)
	ctx := context.Background()
	org := cfg("key-org-a", app.VapiUS)
	a, err := client.CreateAssistant(ctx, org, vapi.AssistantSpec{
		Name: "Desk", ServerURL: "https://old.example.com/api/webhooks/vapi", ServerSecret: "whsec-old-1",
	})
	if err != nil {
		t.Fatalf("CreateAssistant: %v", err)
	}
	stored := func() sandbox.VapiServer {
		t.Helper()
		as := sb.Vapi.Assistants("key-org-a")
		if len(as) != 1 || as[0].Server == nil {
			t.Fatalf("the stand-in holds %+v", as)
		}
		return *as[0].Server
	}

	t.Run("new url and secret", func(t *testing.T) {
		got, err := client.UpdateAssistantServer(ctx, org, a.ID,
			vapi.Server{URL: "https://new.example.com/api/webhooks/vapi", Secret: "whsec-new-2"})
		if err != nil {
			t.Fatal(err)
		}
		want := a
		want.ServerURL = "https://new.example.com/api/webhooks/vapi"
		if got != want {
			t.Errorf("updated = %+v, want %+v", got, want)
		}
		if s := stored(); s.URL != want.ServerURL || s.Secret != "whsec-new-2" {
			t.Errorf("stored server = %+v", s)
		}
		if as := sb.Vapi.Assistants("key-org-a"); as[0].Name != "Desk" || len(as[0].Model) == 0 {
			t.Errorf("other settings changed: %+v", as[0])
		}
	})
	t.Run("no secret clears it", func(t *testing.T) {
		if _, err := client.UpdateAssistantServer(ctx, org, a.ID,
			vapi.Server{URL: "https://new.example.com/api/webhooks/vapi"}); err != nil {
			t.Fatal(err)
		}
		if s := stored(); s.Secret != "" {
			t.Errorf("stored server = %+v, want no secret", s)
		}
	})
	t.Run("unknown id", func(t *testing.T) {
		_, err := client.UpdateAssistantServer(ctx, org, "no-such-id", vapi.Server{URL: "https://x.example.com/hook"})
		if !errors.Is(err, vapi.ErrAssistantNotFound) || app.ErrorCode(err) != app.ENotFound {
			t.Fatalf("err = %v, want ENotFound wrapping ErrAssistantNotFound", err)
		}
	})
	t.Run("another org's assistant", func(t *testing.T) {
		_, err := client.UpdateAssistantServer(ctx, cfg("key-org-b", app.VapiUS), a.ID,
			vapi.Server{URL: "https://evil.example.com/hook", Secret: "whsec-evil"})
		if !errors.Is(err, vapi.ErrAssistantNotFound) {
			t.Fatalf("err = %v, want ErrAssistantNotFound", err)
		}
		if s := stored(); s.URL != "https://new.example.com/api/webhooks/vapi" {
			t.Errorf("stored server = %+v", s)
		}
	})
	t.Run("invalid key", func(t *testing.T) {
		_, err := client.UpdateAssistantServer(ctx, cfg("invalid-key", app.VapiUS), a.ID,
			vapi.Server{URL: "https://x.example.com/hook"})
		if app.ErrorCode(err) != app.EVerificationFailed || errors.Is(err, vapi.ErrAssistantNotFound) {
			t.Fatalf("err = %v, want %s", err, app.EVerificationFailed)
		}
		apptest.AssertNoSecret(t, "the error", fmt.Sprint(err), "invalid-key")
	})
	t.Run("refused by Vapi", func(t *testing.T) {
		_, err := client.UpdateAssistantServer(ctx, org, a.ID, vapi.Server{URL: "not a url", Secret: "s3cret-value"})
		if app.ErrorCode(err) != app.EValidation {
			t.Fatalf("err = %v, want %s", err, app.EValidation)
		}
		if msg := app.ErrorMessage(err); msg != "Vapi refused the assistant's server settings: server.url must be a URL address." {
			t.Errorf("message = %q", msg)
		}
		apptest.AssertNoSecret(t, "the error", fmt.Sprint(err), "key-org-a", "s3cret-value")
	})
	t.Run("empty id", func(t *testing.T) {
		_, err := client.UpdateAssistantServer(ctx, org, " ", vapi.Server{URL: "https://x.example.com/hook"})
		if app.ErrorCode(err) != app.EValidation {
			t.Fatalf("err = %v, want %s", err, app.EValidation)
		}
	})
	t.Run("provider down", func(t *testing.T) {
		_, err := client.UpdateAssistantServer(ctx, cfg("key-down-1", app.VapiUS), a.ID, vapi.Server{URL: "https://x.example.com/hook"})
		if app.ErrorCode(err) != app.EProviderUnavailable {
			t.Fatalf("err = %v, want %s", err, app.EProviderUnavailable)
		}
	})
}

// TestWebhookCredential: the client creates an HMAC credential the stand-in
// accepts, an assistant pointed at it signs its events the way BYOC's
// webhook route verifies them (HMAC-SHA256 of "{timestamp}.{body}", hex, in
// x-signature), and the credential can be deleted.
func TestWebhookCredential(t *testing.T) {
	client, sb := newClient(t)
	ctx := context.Background()
	org := cfg("key-org-a", app.VapiUS)
	const secret = "whsec-signing-0123456789"

	cred, err := client.CreateWebhookCredential(ctx, org, "BYOC webhook signing", secret)
	if err != nil {
		t.Fatal(err)
	}
	stored := sb.Vapi.Credentials("key-org-a")
	if cred.ID == "" || len(stored) != 1 || stored[0].ID != cred.ID || stored[0].AuthenticationPlan.SecretKey != secret ||
		stored[0].AuthenticationPlan.Algorithm != "sha256" || stored[0].AuthenticationPlan.SignatureEncoding != "hex" {
		t.Fatalf("created %+v; the stand-in holds %+v", cred, stored)
	}

	a, err := client.CreateAssistant(ctx, org, vapi.AssistantSpec{Name: "Desk",
		ServerURL: "https://byoc.example.com/api/webhooks/vapi", ServerCredentialID: cred.ID})
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"message":{"type":"hang"}}`)
	h, err := sb.Vapi.EventHeaders("key-org-a", a.ID, body, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if ts := h.Get(vapi.TimestampHeader); ts == "" || h.Get(vapi.SignatureHeader) != apptest.VapiSignature(secret, ts, body) {
		t.Errorf("event headers = %v, want an HMAC of the timestamp and body", h)
	}

	t.Run("an assistant's server is pointed at it", func(t *testing.T) {
		b, err := client.CreateAssistant(ctx, org, vapi.AssistantSpec{Name: "Other",
			ServerURL: "https://byoc.example.com/api/webhooks/vapi", ServerSecret: "whsec-inline"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := client.UpdateAssistantServer(ctx, org, b.ID,
			vapi.Server{URL: "https://byoc.example.com/api/webhooks/vapi", CredentialID: cred.ID}); err != nil {
			t.Fatal(err)
		}
		if s, _ := sb.Vapi.Signing("key-org-a", b.ID); s != (sandbox.VapiSigning{Mode: "hmac", Secret: secret}) {
			t.Errorf("signing = %+v, want HMAC with the credential's secret", s)
		}
		for _, as := range sb.Vapi.Assistants("key-org-a") {
			if as.ID == b.ID && (as.Server == nil || as.Server.Secret != "" || as.Server.CredentialID != cred.ID) {
				t.Errorf("server = %+v, want the credential and no inline secret", as.Server)
			}
		}
	})
	t.Run("refused before the call", func(t *testing.T) {
		for name, c := range map[string]struct{ name, secret string }{
			"no secret": {"BYOC webhook signing", ""},
			"no name":   {"", secret},
			"long name": {strings.Repeat("n", vapi.MaxCredentialNameLength+1), secret},
		} {
			if _, err := client.CreateWebhookCredential(ctx, org, c.name, c.secret); app.ErrorCode(err) != app.EValidation {
				t.Errorf("%s: err = %v, want %s", name, err, app.EValidation)
			}
		}
		if n := len(sb.Vapi.Credentials("key-org-a")); n != 1 {
			t.Errorf("%d credentials, want still 1", n)
		}
	})
	t.Run("invalid key", func(t *testing.T) {
		_, err := client.CreateWebhookCredential(ctx, cfg("invalid-key", app.VapiUS), "BYOC webhook signing", secret)
		if app.ErrorCode(err) != app.EVerificationFailed {
			t.Fatalf("err = %v, want %s", err, app.EVerificationFailed)
		}
		apptest.AssertNoSecret(t, "the error", fmt.Sprint(err), "invalid-key", secret)
	})
	t.Run("delete", func(t *testing.T) {
		if err := client.DeleteCredential(ctx, cfg("key-org-b", app.VapiUS), cred.ID); !errors.Is(err, vapi.ErrCredentialNotFound) ||
			app.ErrorCode(err) != app.ENotFound {
			t.Fatalf("another org's delete: %v, want ENotFound wrapping ErrCredentialNotFound", err)
		}
		if err := client.DeleteCredential(ctx, org, cred.ID); err != nil {
			t.Fatal(err)
		}
		if n := len(sb.Vapi.Credentials("key-org-a")); n != 0 {
			t.Errorf("%d credentials after the delete", n)
		}
		if err := client.DeleteCredential(ctx, org, cred.ID); !errors.Is(err, vapi.ErrCredentialNotFound) {
			t.Errorf("deleting again: %v, want ErrCredentialNotFound", err)
		}
	})
}
