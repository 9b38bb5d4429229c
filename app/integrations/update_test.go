package integrations_test

import (
	"context"
	"strings"
	"testing"

	"byoc/app"
	"byoc/app/apptest"
)

func TestUpdateMergesVerifiesAndAudits(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	admin, member := seedOrg(t, "Update Dental")
	key := resendKey("restricted")
	if _, err := e.svc.Save(ctx, admin, app.Resend, app.Values{"apiKey": key, "fromEmail": "hello@example.com"}); err != nil {
		t.Fatal(err)
	}

	t.Run("what the form shows: values, and secrets masked", func(t *testing.T) {
		ed, err := e.svc.Editable(ctx, admin, app.Resend)
		if err != nil {
			t.Fatal(err)
		}
		if ed.Values["fromEmail"] != "hello@example.com" || ed.Values["apiKey"] != "" ||
			ed.Secrets["apiKey"] != "••••"+key[len(key)-4:] {
			t.Errorf("editable = %+v", ed)
		}
		_, err = e.svc.Editable(ctx, member, app.Resend)
		wantCode(t, err, app.EForbidden)
		_, err = e.svc.Editable(ctx, admin, app.Twilio)
		wantCode(t, err, app.ENotConfigured)
		_, err = e.svc.Editable(ctx, admin, app.GoogleCalendar)
		wantCode(t, err, app.EValidation)
	})

	t.Run("a sender change keeps the key and its scope", func(t *testing.T) {
		res, err := e.svc.Update(ctx, admin, app.Resend, app.Values{"fromEmail": "team@example.com"})
		if err != nil {
			t.Fatal(err)
		}
		if !res.Limited || !res.Status.Limited || !strings.Contains(res.Status.Warning, "Sending-only") {
			t.Errorf("result = %+v", res)
		}
		ed, _ := e.svc.Editable(ctx, admin, app.Resend)
		if ed.Values["fromEmail"] != "team@example.com" || ed.Secrets["apiKey"] != "••••"+key[len(key)-4:] {
			t.Errorf("after the update: %+v", ed)
		}
		if a := e.lastAudit(t, admin.OrgID); a.Action != "credentials.save" || a.Outcome != app.OutcomeSuccess {
			t.Errorf("audit = %+v", a)
		}
	})

	t.Run("refusals store nothing and are audited", func(t *testing.T) {
		_, err := e.svc.Update(ctx, admin, app.Resend, app.Values{"apiKey": resendKey("invalid")})
		wantCode(t, err, app.EVerificationFailed)
		_, err = e.svc.Update(ctx, admin, app.Resend, app.Values{"fromEmail": "nope"})
		wantCode(t, err, app.EValidation)
		if f := app.ErrorFields(err); f["fromEmail"] == "" {
			t.Errorf("fields = %v", f)
		}
		if a := e.lastAudit(t, admin.OrgID); a.Outcome != app.OutcomeFailure || a.Detail != "invalid input: fromEmail" {
			t.Errorf("audit = %+v", a)
		}
		_, err = e.svc.Update(ctx, member, app.Resend, app.Values{"fromEmail": "member@example.com"})
		wantCode(t, err, app.EForbidden)
		_, err = e.svc.Update(ctx, admin, app.ElevenLabs, app.Values{"apiKey": elevenLabsKey()})
		wantCode(t, err, app.ENotConfigured)
		ed, _ := e.svc.Editable(ctx, admin, app.Resend)
		if ed.Values["fromEmail"] != "team@example.com" || ed.Secrets["apiKey"] != "••••"+key[len(key)-4:] {
			t.Errorf("a refusal changed the connection: %+v", ed)
		}
	})

	t.Run("another org's connection is not this org's", func(t *testing.T) {
		other, _ := seedOrg(t, "Other Dental")
		_, err := e.svc.Update(ctx, other, app.Resend, app.Values{"fromEmail": "x@example.com"})
		wantCode(t, err, app.ENotConfigured)
	})

	apptest.AssertNoSecret(t, "the audit log", auditText(e.audit(t, admin.OrgID)), key)
}

func auditText(entries []app.AuditEntry) string {
	var b strings.Builder
	for _, a := range entries {
		b.WriteString(a.Detail + "\n")
	}
	return b.String()
}
