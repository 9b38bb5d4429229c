package integrations_test

import (
	"context"
	"testing"
	"time"

	"byoc/app"
	"byoc/app/integrations"
)

// TestSaveVapiSignsWithHMAC: a Vapi save makes the org's assistants sign
// their webhooks with an HMAC credential of the org's secret, stores its
// id, and deletes the credential it replaces (in the account it was made
// in). A new Vapi row is HMAC-only; a stored row keeps its setting, so orgs
// connected before keep today's behaviour until an admin changes it.
func TestSaveVapiSignsWithHMAC(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	admin, _ := seedOrg(t, "Signing Dental")
	key, secret := vapiKey(), webhookSecret()

	res, err := e.svc.Save(ctx, admin, app.Vapi, app.Values{"apiKey": key, "webhookSecret": secret})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Status.WebhookHMACOnly || !e.statusOf(t, admin, app.Vapi).WebhookHMACOnly {
		t.Errorf("a new Vapi connection is not HMAC-only: %+v", res.Status)
	}
	if _, ok := res.Status.Details["webhookCredentialId"]; ok {
		t.Errorf("the status shows the signing credential's id: %v", res.Status.Details)
	}
	storedCredential := func() string {
		t.Helper()
		cfg, err := e.creds.Get(ctx, admin.OrgID, app.Vapi)
		if err != nil {
			t.Fatal(err)
		}
		return cfg.(app.VapiConfig).WebhookCredentialID
	}
	first := storedCredential()
	if cs := e.sb.Vapi.Credentials(key); len(cs) != 1 || cs[0].ID != first || cs[0].Name != integrations.WebhookCredentialName {
		t.Fatalf("the account holds %+v, want the one stored (%s)", cs, first)
	}

	t.Run("saving again replaces the credential", func(t *testing.T) {
		if _, err := e.svc.Save(ctx, admin, app.Vapi, app.Values{"apiKey": key}); err != nil {
			t.Fatal(err)
		}
		second := storedCredential()
		if cs := e.sb.Vapi.Credentials(key); second == first || len(cs) != 1 || cs[0].ID != second {
			t.Errorf("after saving again the account holds %+v, stored %s; want only the new one", cs, second)
		}
		assertServers(t, e.sb.Vapi, key, []string{res.InboundAssistantID, res.OutboundAssistantID}, secret)
	})
	t.Run("another account: the old one's credential is deleted with its own key", func(t *testing.T) {
		other := vapiKey()
		if _, err := e.svc.Save(ctx, admin, app.Vapi, app.Values{"apiKey": other}); err != nil {
			t.Fatal(err)
		}
		if n := len(e.sb.Vapi.Credentials(key)); n != 0 {
			t.Errorf("the old account keeps %d signing credentials", n)
		}
		if cs := e.sb.Vapi.Credentials(other); len(cs) != 1 || cs[0].ID != storedCredential() {
			t.Errorf("the new account holds %+v", cs)
		}
	})

	t.Run("a row stored before keeps its setting", func(t *testing.T) {
		old, _ := seedOrg(t, "Old Dental")
		oldKey := vapiKey()
		// As the code before the setting stored it: not HMAC-only.
		if _, err := e.creds.Save(ctx, app.Connection{OrgID: old.OrgID, Config: app.VapiConfig{APIKey: app.NewSecret(oldKey),
			WebhookSecret: app.NewSecret(webhookSecret()), Region: app.VapiUS}, VerifiedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		saved, err := e.svc.Save(ctx, old, app.Vapi, app.Values{"apiKey": oldKey})
		if err != nil {
			t.Fatal(err)
		}
		if saved.Status.WebhookHMACOnly {
			t.Error("saving an existing connection again turned HMAC only on")
		}
		// A disconnect and a new connection are a new row.
		if _, err := e.svc.Disconnect(ctx, old, app.Vapi); err != nil {
			t.Fatal(err)
		}
		again, err := e.svc.Save(ctx, old, app.Vapi, app.Values{"apiKey": oldKey})
		if err != nil {
			t.Fatal(err)
		}
		if !again.Status.WebhookHMACOnly {
			t.Error("a new connection after a disconnect is not HMAC-only")
		}
	})
	e.assertNoLeak(t, admin.OrgID, []string{key, secret})
}

// TestSetWebhookHMACOnly: only an admin changes the setting; every attempt
// is audited; input that says nothing is refused and changes nothing.
func TestSetWebhookHMACOnly(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	admin, member := seedOrg(t, "Setting Dental")
	on, off := true, false

	t.Run("not connected", func(t *testing.T) {
		_, err := e.svc.SetWebhookHMACOnly(ctx, admin, &on)
		wantCode(t, err, app.ENotConfigured)
	})
	if _, err := e.svc.Save(ctx, admin, app.Vapi, app.Values{"apiKey": vapiKey()}); err != nil {
		t.Fatal(err)
	}
	audits := len(e.audit(t, admin.OrgID))

	tests := []struct {
		name     string
		who      app.Principal
		value    *bool
		wantCode string
		want     bool // the setting afterwards
	}{
		{"admin turns it off", admin, &off, "", false},
		{"member refused", member, &on, app.EForbidden, false},
		{"nothing said", admin, nil, app.EValidation, false},
		{"admin turns it on", admin, &on, "", true},
		{"admin turns it on again", admin, &on, "", true},
		{"member refused to turn it off", member, &off, app.EForbidden, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := e.svc.SetWebhookHMACOnly(ctx, tt.who, tt.value)
			wantCode(t, err, tt.wantCode)
			if err == nil && (st.Provider != app.Vapi || !st.Connected || st.WebhookHMACOnly != tt.want) {
				t.Errorf("status = %+v, want Vapi connected with HMAC only %v", st, tt.want)
			}
			if tt.wantCode == app.EValidation {
				if f := app.ErrorFields(err); f["hmacOnly"] == "" {
					t.Errorf("fields = %v, want a message for hmacOnly", f)
				}
			}
			if got := e.statusOf(t, admin, app.Vapi).WebhookHMACOnly; got != tt.want {
				t.Errorf("stored setting = %v, want %v", got, tt.want)
			}
			audits++
			log := e.audit(t, admin.OrgID)
			if len(log) != audits {
				t.Fatalf("%d audit entries, want %d", len(log), audits)
			}
			last := e.lastAudit(t, admin.OrgID)
			wantOutcome := app.OutcomeSuccess
			if tt.wantCode != "" {
				wantOutcome = app.OutcomeFailure
			}
			if last.Action != integrations.ActionWebhookSigning || last.Provider != app.Vapi || last.ActorID != tt.who.UserID ||
				last.Outcome != wantOutcome {
				t.Errorf("audit entry = %+v", last)
			}
			if tt.wantCode == "" && last.Detail != integrations.WebhookSigningDetail(tt.want) {
				t.Errorf("audit detail = %q", last.Detail)
			}
		})
	}
}
