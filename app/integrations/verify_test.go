package integrations_test

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"byoc/app"
	"byoc/app/apptest"
	"byoc/app/integrations"
	"byoc/app/sandbox"
)

func TestVerifySuccessRecordsLastVerified(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	admin, _ := seedOrg(t, "Verified Dental")
	calls := []saveCall{
		vapiSave(app.Values{"apiKey": vapiKey()}),
		twilioSave(app.Values{"accountSid": twilioSID(), "authToken": twilioToken(), "phoneNumber": "+12025550123"}),
		resendSave(app.Values{"apiKey": resendKey("restricted")}),
		elevenLabsSave(app.Values{"apiKey": elevenLabsKey()}),
	}
	for _, call := range calls {
		t.Run(string(call.provider), func(t *testing.T) {
			if _, err := call.save(ctx, e.svc, admin); err != nil {
				t.Fatal(err)
			}
			later := e.clock.Now().Add(time.Hour)
			e.clock.Set(later)
			res, err := e.svc.Verify(ctx, admin, call.provider)
			if err != nil {
				t.Fatal(err)
			}
			if res.Provider != call.provider || !res.Verified || !res.VerifiedAt.Equal(later) || res.Detail == "" {
				t.Errorf("result = %+v", res)
			}
			st := e.statusOf(t, admin, call.provider)
			if !st.Connected || st.NeedsAttention || st.LastVerified == nil || !st.LastVerified.Equal(later) ||
				st.LastChecked == nil || !st.LastChecked.Equal(later) {
				t.Errorf("status = %+v, want connected and verified at %v", st, later)
			}
			if !reflect.DeepEqual(res.Status, st) {
				t.Errorf("result status = %+v, want %+v", res.Status, st)
			}
			var stored time.Time
			if err := e.db.Pool.QueryRow(ctx, `select last_verified_at from org_credentials where org_id = $1 and provider = $2`,
				admin.OrgID, string(call.provider)).Scan(&stored); err != nil || !stored.Equal(later) {
				t.Errorf("last_verified_at = %v, %v; want %v", stored, err, later)
			}
			last := e.lastAudit(t, admin.OrgID)
			if last.Action != integrations.ActionVerify || last.Outcome != app.OutcomeSuccess || last.Provider != call.provider ||
				last.Detail != res.Detail || last.ActorID != admin.UserID {
				t.Errorf("audit entry = %+v", last)
			}
			e.assertNoLeak(t, admin.OrgID, call.secrets, res)
		})
	}
}

func TestVerifyRefusalRecordsTheReason(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	admin, _ := seedOrg(t, "Revoked Dental")
	// Keys that were fine when saved and are refused now: stored directly.
	earlier := e.clock.Now()
	configs := []app.Config{
		app.VapiConfig{APIKey: app.NewSecret(vapiKey("invalid")), Region: app.VapiUS},
		app.TwilioConfig{AccountSID: twilioSID(), AuthToken: app.NewSecret(twilioToken("invalid")), PhoneNumber: "+12025550123"},
		app.ResendConfig{APIKey: app.NewSecret(resendKey("invalid"))},
		app.ElevenLabsConfig{APIKey: app.NewSecret(elevenLabsKey("invalid"))},
	}
	for _, cfg := range configs {
		provider := cfg.Provider()
		t.Run(string(provider), func(t *testing.T) {
			if _, err := e.creds.Save(ctx, app.Connection{OrgID: admin.OrgID, Config: cfg, VerifiedAt: earlier}); err != nil {
				t.Fatal(err)
			}
			later := earlier.Add(time.Hour)
			e.clock.Set(later)
			res, err := e.svc.Verify(ctx, admin, provider)
			wantCode(t, err, app.EVerificationFailed)
			if !reflect.DeepEqual(res, integrations.VerifyResult{}) {
				t.Errorf("result = %+v, want the zero value", res)
			}
			st := e.statusOf(t, admin, provider)
			if !st.Connected || !st.NeedsAttention || st.VerificationError != app.ErrorMessage(err) ||
				st.LastChecked == nil || !st.LastChecked.Equal(later) || st.LastVerified == nil || !st.LastVerified.Equal(earlier) {
				t.Errorf("status = %+v, want needs attention with %q", st, app.ErrorMessage(err))
			}
			var stored string
			if err := e.db.Pool.QueryRow(ctx, `select verification_error from org_credentials where org_id = $1 and provider = $2`,
				admin.OrgID, string(provider)).Scan(&stored); err != nil || stored == "" {
				t.Errorf("verification_error = %q, %v", stored, err)
			}
			last := e.lastAudit(t, admin.OrgID)
			if last.Action != integrations.ActionVerify || last.Outcome != app.OutcomeFailure || last.Detail != app.ErrorMessage(err) {
				t.Errorf("audit entry = %+v", last)
			}
		})
	}
}

func TestVerifyProviderUnavailableRecordsNothing(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, withTimeout(200*time.Millisecond))
	admin, _ := seedOrg(t, "Unlucky Dental")
	earlier := e.clock.Now()
	for _, cfg := range []app.Config{
		app.VapiConfig{APIKey: app.NewSecret(vapiKey("down")), Region: app.VapiUS},
		app.ResendConfig{APIKey: app.NewSecret(resendKey("slow"))},
	} {
		provider := cfg.Provider()
		t.Run(string(provider), func(t *testing.T) {
			if _, err := e.creds.Save(ctx, app.Connection{OrgID: admin.OrgID, Config: cfg, VerifiedAt: earlier}); err != nil {
				t.Fatal(err)
			}
			e.clock.Set(earlier.Add(time.Hour))
			_, err := e.svc.Verify(ctx, admin, provider)
			wantCode(t, err, app.EProviderUnavailable)
			st := e.statusOf(t, admin, provider)
			if !st.Connected || st.NeedsAttention || st.VerificationError != "" || !st.LastVerified.Equal(earlier) {
				t.Errorf("status = %+v, want unchanged (verified at %v, no error)", st, earlier)
			}
			if last := e.lastAudit(t, admin.OrgID); last.Outcome != app.OutcomeFailure || last.Detail != app.ErrorMessage(err) {
				t.Errorf("audit entry = %+v", last)
			}
		})
	}
}

func TestVerifyWithoutUsableCredentials(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	admin, _ := seedOrg(t, "Empty Dental")

	t.Run("nothing stored", func(t *testing.T) {
		for _, p := range app.Providers {
			_, err := e.svc.Verify(ctx, admin, p)
			wantCode(t, err, app.ENotConfigured)
		}
	})
	t.Run("undecryptable row", func(t *testing.T) {
		if _, err := e.db.Pool.Exec(ctx, `insert into org_credentials (org_id, provider, encrypted_config)
			values ($1, 'elevenlabs', '\x0100112233')`, admin.OrgID); err != nil {
			t.Fatal(err)
		}
		_, err := e.svc.Verify(ctx, admin, app.ElevenLabs)
		wantCode(t, err, app.ENotConfigured)
		if !strings.Contains(app.ErrorMessage(err), "can no longer be decrypted") {
			t.Errorf("message = %q", app.ErrorMessage(err))
		}
	})
	t.Run("google calendar on a server without a Google client", func(t *testing.T) {
		if _, err := e.creds.Save(ctx, app.Connection{OrgID: admin.OrgID, Config: app.GoogleCalendarConfig{
			RefreshToken: app.NewSecret("google-refresh-" + apptest.RandomHex(8)), Email: "owner@example.com"}}); err != nil {
			t.Fatal(err)
		}
		auditBefore := len(e.audit(t, admin.OrgID))
		_, err := e.svc.Verify(ctx, admin, app.GoogleCalendar)
		wantCode(t, err, app.ENotConfigured)
		if app.ErrorMessage(err) != "Google Calendar is not set up on this server." {
			t.Errorf("verify message = %q", app.ErrorMessage(err))
		}
		_, err = e.svc.Disconnect(ctx, admin, app.GoogleCalendar)
		wantCode(t, err, app.ENotConfigured)
		if app.ErrorMessage(err) != "Google Calendar is not set up on this server." {
			t.Errorf("disconnect message = %q", app.ErrorMessage(err))
		}
		if st := e.statusOf(t, admin, app.GoogleCalendar); !st.Connected || st.NeedsAttention {
			t.Errorf("status = %+v, want connected and untouched", st)
		}
		if n := len(e.audit(t, admin.OrgID)) - auditBefore; n != 0 {
			t.Errorf("%d audit entries, want none: nothing was attempted", n)
		}
	})
	t.Run("unknown provider", func(t *testing.T) {
		_, err := e.svc.Verify(ctx, admin, "myspace")
		wantCode(t, err, app.EUnknownProvider)
		_, err = e.svc.Disconnect(ctx, admin, "myspace")
		wantCode(t, err, app.EUnknownProvider)
		_, err = e.svc.Status(ctx, admin, "myspace")
		wantCode(t, err, app.EUnknownProvider)
	})
	t.Run("no org", func(t *testing.T) {
		_, err := e.svc.Statuses(ctx, app.Principal{UserID: admin.UserID, Role: app.RoleAdmin})
		wantCode(t, err, app.EUnauthorized)
		_, err = e.svc.Save(ctx, app.Principal{UserID: admin.UserID, Role: app.RoleAdmin}, app.Resend, app.Values{"apiKey": resendKey()})
		wantCode(t, err, app.EUnauthorized)
	})
}

func TestDisconnect(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	admin, _ := seedOrg(t, "Leaving Dental")
	key := vapiKey()
	if _, err := e.svc.Save(ctx, admin, app.Twilio, app.Values{"accountSid": twilioSID(), "authToken": twilioToken(),
		"phoneNumber": "+12025550123"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Save(ctx, admin, app.Vapi, app.Values{"apiKey": key, "webhookSecret": webhookSecret()}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Save(ctx, admin, app.Resend, app.Values{"apiKey": resendKey()}); err != nil {
		t.Fatal(err)
	}

	t.Run("vapi", func(t *testing.T) {
		st, err := e.svc.Disconnect(ctx, admin, app.Vapi)
		if err != nil {
			t.Fatal(err)
		}
		if st.Connected || st.Provider != app.Vapi || len(st.Details) != 0 {
			t.Errorf("status = %+v, want Vapi not connected", st)
		}
		_, err = e.creds.Get(ctx, admin.OrgID, app.Vapi)
		wantCode(t, err, app.ENotConfigured)
		if n := e.mappingCount(t, admin.OrgID); n != 0 {
			t.Errorf("%d mappings left, want none", n)
		}
		agent, err := e.db.OutboundAgent(ctx, admin.OrgID)
		if err != nil || agent.VapiAssistantID != "" || agent.PhoneNumber != "+12025550123" {
			t.Errorf("outbound agent = %+v, %v; want no assistant, the number kept", agent, err)
		}
		if n := len(e.sb.Vapi.Assistants(key)); n != 2 {
			t.Errorf("the org's Vapi account holds %d assistants, want its 2 untouched", n)
		}
		if last := e.lastAudit(t, admin.OrgID); last.Action != integrations.ActionDisconnect || last.Outcome != app.OutcomeSuccess ||
			last.Provider != app.Vapi {
			t.Errorf("audit entry = %+v", last)
		}
		if st := e.statusOf(t, admin, app.Twilio); !st.Connected {
			t.Errorf("Twilio status = %+v, want still connected", st)
		}

		_, err = e.svc.Disconnect(ctx, admin, app.Vapi)
		wantCode(t, err, app.ENotConfigured)
		if last := e.lastAudit(t, admin.OrgID); last.Action != integrations.ActionDisconnect || last.Outcome != app.OutcomeFailure {
			t.Errorf("audit entry = %+v", last)
		}
	})
	t.Run("resend", func(t *testing.T) {
		st, err := e.svc.Disconnect(ctx, admin, app.Resend)
		if err != nil || st.Connected || st.Provider != app.Resend {
			t.Fatalf("disconnect = %+v, %v", st, err)
		}
		_, err = e.svc.Disconnect(ctx, admin, app.Resend)
		wantCode(t, err, app.ENotConfigured)
	})
	t.Run("saving again after a disconnect creates new assistants", func(t *testing.T) {
		res, err := e.svc.Save(ctx, admin, app.Vapi, app.Values{"apiKey": key})
		if err != nil {
			t.Fatal(err)
		}
		if n := len(e.sb.Vapi.Assistants(key)); n != 4 {
			t.Errorf("the account holds %d assistants, want 4 (2 forgotten, 2 new)", n)
		}
		if in, out := mappedIDs(t, e, admin.OrgID); in != res.InboundAssistantID || out != res.OutboundAssistantID {
			t.Errorf("mapped %s, %s", in, out)
		}
	})
}

func TestMembersCannotChangeCredentials(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, withGoogle)
	admin, member := seedOrg(t, "Team Dental")
	key := vapiKey()
	if _, err := e.svc.Save(ctx, admin, app.Vapi, app.Values{"apiKey": key}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Save(ctx, admin, app.Resend, app.Values{"apiKey": resendKey()}); err != nil {
		t.Fatal(err)
	}
	before, err := e.svc.Statuses(ctx, member)
	if err != nil {
		t.Fatalf("a member cannot read statuses: %v", err)
	}
	mappingsBefore := e.mappings(t, admin.OrgID)
	auditBefore := len(e.audit(t, admin.OrgID))

	attempts := []struct {
		name     string
		provider app.Provider
		call     func() error
	}{
		{"save vapi", app.Vapi, func() error {
			_, err := e.svc.Save(ctx, member, app.Vapi, app.Values{"apiKey": vapiKey()})
			return err
		}},
		{"save vapi with invalid input", app.Vapi, func() error {
			_, err := e.svc.Save(ctx, member, app.Vapi, app.Values{})
			return err
		}},
		{"save twilio", app.Twilio, func() error {
			_, err := e.svc.Save(ctx, member, app.Twilio, app.Values{"accountSid": twilioSID(), "authToken": twilioToken(), "phoneNumber": "+12025550123"})
			return err
		}},
		{"save resend", app.Resend, func() error {
			_, err := e.svc.Save(ctx, member, app.Resend, app.Values{"apiKey": resendKey()})
			return err
		}},
		{"save elevenlabs", app.ElevenLabs, func() error {
			_, err := e.svc.Save(ctx, member, app.ElevenLabs, app.Values{"apiKey": elevenLabsKey()})
			return err
		}},
		{"verify", app.Vapi, func() error {
			_, err := e.svc.Verify(ctx, member, app.Vapi)
			return err
		}},
		{"disconnect", app.Resend, func() error {
			_, err := e.svc.Disconnect(ctx, member, app.Resend)
			return err
		}},
		{"verify google calendar", app.GoogleCalendar, func() error {
			_, err := e.svc.Verify(ctx, member, app.GoogleCalendar)
			return err
		}},
		{"disconnect google calendar", app.GoogleCalendar, func() error {
			_, err := e.svc.Disconnect(ctx, member, app.GoogleCalendar)
			return err
		}},
	}
	for _, a := range attempts {
		t.Run(a.name, func(t *testing.T) {
			wantCode(t, a.call(), app.EForbidden)
			last := e.lastAudit(t, admin.OrgID)
			if last.ActorID != member.UserID || last.Outcome != app.OutcomeFailure || last.Provider != a.provider {
				t.Errorf("audit entry = %+v, want the member's refused attempt", last)
			}
		})
	}
	after, err := e.svc.Statuses(ctx, member)
	if err != nil || !reflect.DeepEqual(after, before) {
		t.Errorf("statuses changed:\n got %+v\nwant %+v", after, before)
	}
	if got := e.mappings(t, admin.OrgID); !reflect.DeepEqual(got, mappingsBefore) {
		t.Errorf("mappings changed: %+v", got)
	}
	if n := len(e.sb.Vapi.Assistants(key)); n != 2 {
		t.Errorf("%d assistants, want 2", n)
	}
	if n := len(e.audit(t, admin.OrgID)) - auditBefore; n != len(attempts) {
		t.Errorf("%d audit entries for %d refused attempts", n, len(attempts))
	}
}

func TestOrgIsolation(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	adminA, _ := seedOrg(t, "Org A")
	adminB, memberB := seedOrg(t, "Org B")
	keyA, keyB := vapiKey(), vapiKey()

	resA, err := e.svc.Save(ctx, adminA, app.Vapi, app.Values{"apiKey": keyA})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Save(ctx, adminA, app.Twilio, app.Values{"accountSid": twilioSID(), "authToken": twilioToken(),
		"phoneNumber": "+12025550123"}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []app.Principal{adminB, memberB} {
		statuses, err := e.svc.Statuses(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if len(statuses) != len(app.Providers) {
			t.Fatalf("%d statuses, want %d", len(statuses), len(app.Providers))
		}
		for i, st := range statuses {
			if st.Provider != app.Providers[i] || st.Connected || st.NeedsAttention || len(st.Details) != 0 || st.LastVerified != nil {
				t.Errorf("org B sees %+v", st)
			}
		}
	}
	_, err = e.svc.Verify(ctx, adminB, app.Vapi)
	wantCode(t, err, app.ENotConfigured)
	_, err = e.svc.Disconnect(ctx, adminB, app.Vapi)
	wantCode(t, err, app.ENotConfigured)
	if st := e.statusOf(t, adminA, app.Vapi); !st.Connected {
		t.Errorf("org B's disconnect touched org A: %+v", st)
	}
	if n := e.mappingCount(t, adminA.OrgID); n != 2 {
		t.Errorf("org A has %d mappings after org B's disconnect, want 2", n)
	}

	resB, err := e.svc.Save(ctx, adminB, app.Vapi, app.Values{"apiKey": keyB})
	if err != nil {
		t.Fatal(err)
	}
	if resB.InboundAssistantID == resA.InboundAssistantID || resB.OutboundAssistantID == resA.OutboundAssistantID {
		t.Errorf("org B got org A's assistants")
	}
	storedA, err := e.creds.Get(ctx, adminA.OrgID, app.Vapi)
	if err != nil || storedA.(app.VapiConfig).APIKey.Reveal() != keyA {
		t.Errorf("org A's key changed")
	}
	if in, out := mappedIDs(t, e, adminA.OrgID); in != resA.InboundAssistantID || out != resA.OutboundAssistantID {
		t.Errorf("org A's mappings changed: %s, %s", in, out)
	}
	if st := e.statusOf(t, adminB, app.Twilio); st.Connected {
		t.Errorf("org B sees org A's Twilio: %+v", st)
	}
	for _, entry := range e.audit(t, adminB.OrgID) {
		if entry.OrgID != adminB.OrgID || entry.ActorID != adminB.UserID {
			t.Errorf("org B's audit log holds %+v", entry)
		}
	}
}

// Google Calendar is tested and disconnected like the other providers, with
// one audit entry for each attempt.
func TestGoogleCalendarLikeEveryProvider(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, withGoogle)
	admin, _ := seedOrg(t, "Calendar Dental")
	cfg := e.connectGoogle(t, admin)
	// newAudits returns the entries written since the count before.
	newAudits := func(t *testing.T, before int) []app.AuditEntry {
		t.Helper()
		all := e.audit(t, admin.OrgID)
		return all[:len(all)-before]
	}

	t.Run("verify", func(t *testing.T) {
		later := e.clock.Now().Add(time.Minute)
		e.clock.Set(later)
		before := len(e.audit(t, admin.OrgID))
		res, err := e.svc.Verify(ctx, admin, app.GoogleCalendar)
		if err != nil {
			t.Fatal(err)
		}
		if res.Provider != app.GoogleCalendar || !res.Verified || !res.VerifiedAt.Equal(later) ||
			!strings.Contains(res.Detail, sandbox.GoogleDefaultEmail) {
			t.Errorf("result = %+v", res)
		}
		st := e.statusOf(t, admin, app.GoogleCalendar)
		if !st.Connected || st.NeedsAttention || st.LastVerified == nil || !st.LastVerified.Equal(later) ||
			st.Details["email"] != sandbox.GoogleDefaultEmail {
			t.Errorf("status = %+v, want connected as %s and verified at %v", st, sandbox.GoogleDefaultEmail, later)
		}
		if !reflect.DeepEqual(res.Status, st) {
			t.Errorf("result status = %+v, want %+v", res.Status, st)
		}
		audits := newAudits(t, before)
		if len(audits) != 1 {
			t.Fatalf("%d audit entries for one test, want 1: %+v", len(audits), audits)
		}
		if a := audits[0]; a.Action != integrations.ActionVerify || a.Provider != app.GoogleCalendar ||
			a.Outcome != app.OutcomeSuccess || a.ActorID != admin.UserID || a.Detail != res.Detail {
			t.Errorf("audit entry = %+v", a)
		}
	})

	t.Run("verify refused by Google", func(t *testing.T) {
		e.gsb.RevokeGrants(sandbox.GoogleDefaultEmail)
		before := len(e.audit(t, admin.OrgID))
		res, err := e.svc.Verify(ctx, admin, app.GoogleCalendar)
		wantCode(t, err, app.EVerificationFailed)
		if !reflect.DeepEqual(res, integrations.VerifyResult{}) {
			t.Errorf("result = %+v, want the zero value", res)
		}
		if st := e.statusOf(t, admin, app.GoogleCalendar); !st.NeedsAttention || st.VerificationError != app.ErrorMessage(err) {
			t.Errorf("status = %+v, want needs attention with %q", st, app.ErrorMessage(err))
		}
		audits := newAudits(t, before)
		if len(audits) != 1 || audits[0].Action != integrations.ActionVerify || audits[0].Outcome != app.OutcomeFailure ||
			audits[0].Detail != app.ErrorMessage(err) {
			t.Errorf("audit entries = %+v, want one failed test with the message", audits)
		}
	})

	t.Run("disconnect", func(t *testing.T) {
		before := len(e.audit(t, admin.OrgID))
		revocations := e.gsb.RevokeRequests()
		st, err := e.svc.Disconnect(ctx, admin, app.GoogleCalendar)
		if err != nil {
			t.Fatal(err)
		}
		if st.Connected || st.Provider != app.GoogleCalendar || len(st.Details) != 0 {
			t.Errorf("status = %+v, want Google Calendar not connected", st)
		}
		if e.gsb.RevokeRequests() != revocations+1 {
			t.Errorf("%d revocation requests, want 1", e.gsb.RevokeRequests()-revocations)
		}
		_, err = e.creds.Get(ctx, admin.OrgID, app.GoogleCalendar)
		wantCode(t, err, app.ENotConfigured)
		audits := newAudits(t, before)
		if len(audits) != 1 {
			t.Fatalf("%d audit entries for one disconnect, want 1: %+v", len(audits), audits)
		}
		if a := audits[0]; a.Action != integrations.ActionDisconnect || a.Provider != app.GoogleCalendar ||
			a.Outcome != app.OutcomeSuccess || a.ActorID != admin.UserID {
			t.Errorf("audit entry = %+v", a)
		}

		before++
		_, err = e.svc.Disconnect(ctx, admin, app.GoogleCalendar)
		wantCode(t, err, app.ENotConfigured)
		if audits := newAudits(t, before); len(audits) != 1 || audits[0].Action != integrations.ActionDisconnect ||
			audits[0].Outcome != app.OutcomeFailure {
			t.Errorf("audit entries = %+v, want one failed disconnect", audits)
		}
	})
	e.assertNoLeak(t, admin.OrgID, []string{cfg.RefreshToken.Reveal(), cfg.AccessToken.Reveal()})
}
