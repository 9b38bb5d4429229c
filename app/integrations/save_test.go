package integrations_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"byoc/app"
	"byoc/app/apptest"
	"byoc/app/integrations"
	"byoc/app/providers/elevenlabs"
	"byoc/app/providers/resend"
)

// saveCall is one Save call with its input, for tables across providers.
type saveCall struct {
	provider app.Provider
	values   app.Values
	secrets  []string
}

func (c saveCall) save(ctx context.Context, s *integrations.Service, p app.Principal) (integrations.SaveResult, error) {
	return s.Save(ctx, p, c.provider, c.values)
}

func vapiSave(in app.Values) saveCall {
	return saveCall{app.Vapi, in, []string{in["apiKey"], in["webhookSecret"]}}
}

func twilioSave(in app.Values) saveCall {
	return saveCall{app.Twilio, in, []string{in["authToken"]}}
}

func resendSave(in app.Values) saveCall {
	return saveCall{app.Resend, in, []string{in["apiKey"]}}
}

func elevenLabsSave(in app.Values) saveCall {
	return saveCall{app.ElevenLabs, in, []string{in["apiKey"]}}
}

func TestSaveValidation(t *testing.T) {
	sid := twilioSID()
	tests := []struct {
		name       string
		call       saveCall
		wantFields []string
	}{
		{"vapi: everything empty", vapiSave(app.Values{}), []string{"apiKey"}},
		{"vapi: only spaces", vapiSave(app.Values{"apiKey": "   ", "region": " "}), []string{"apiKey"}},
		{"vapi: key too short", vapiSave(app.Values{"apiKey": "vapi-short"}), []string{"apiKey"}},
		{"vapi: key too long", vapiSave(app.Values{"apiKey": strings.Repeat("k", 201)}), []string{"apiKey"}},
		{"vapi: key with a space", vapiSave(app.Values{"apiKey": "vapi-private key-0123456789"}), []string{"apiKey"}},
		{"vapi: unknown region", vapiSave(app.Values{"apiKey": vapiKey(), "region": "asia"}), []string{"region"}},
		{"vapi: webhook secret too short", vapiSave(app.Values{"apiKey": vapiKey(), "webhookSecret": "whsec-short"}), []string{"webhookSecret"}},
		{"vapi: all three", vapiSave(app.Values{"apiKey": "vapi-tiny", "webhookSecret": "tiny-secret", "region": "mars"}), []string{"apiKey", "region", "webhookSecret"}},

		{"twilio: everything empty", twilioSave(app.Values{}), []string{"accountSid", "authToken", "phoneNumber"}},
		{"twilio: API key SID", twilioSave(app.Values{"accountSid": "SK" + sid[2:], "authToken": twilioToken(), "phoneNumber": "+12025550123"}), []string{"accountSid"}},
		{"twilio: SID too short", twilioSave(app.Values{"accountSid": sid[:33], "authToken": twilioToken(), "phoneNumber": "+12025550123"}), []string{"accountSid"}},
		{"twilio: token too short", twilioSave(app.Values{"accountSid": sid, "authToken": "abc123", "phoneNumber": "+12025550123"}), []string{"authToken"}},
		{"twilio: token with a space", twilioSave(app.Values{"accountSid": sid, "authToken": "0123456789abcdef 0123456789abcdef", "phoneNumber": "+12025550123"}), []string{"authToken"}},
		{"twilio: bad phone number", twilioSave(app.Values{"accountSid": sid, "authToken": twilioToken(), "phoneNumber": "12345"}), []string{"phoneNumber"}},
		{"twilio: bad WhatsApp number", twilioSave(app.Values{"accountSid": sid, "authToken": twilioToken(), "phoneNumber": "+12025550123", "whatsappNumber": "call me"}), []string{"whatsappNumber"}},

		{"resend: empty", resendSave(app.Values{}), []string{"apiKey"}},
		{"resend: no re_ prefix", resendSave(app.Values{"apiKey": "sk_0123456789abcdef"}), []string{"apiKey"}},
		{"resend: key too short", resendSave(app.Values{"apiKey": "re_123"}), []string{"apiKey"}},
		{"resend: sender with a display name", resendSave(app.Values{"apiKey": resendKey(), "fromEmail": "Acme <hello@acme.example>"}), []string{"fromEmail"}},
		{"resend: sender not an address", resendSave(app.Values{"apiKey": resendKey(), "fromEmail": "hello"}), []string{"fromEmail"}},
		{"resend: sender without a dotted domain", resendSave(app.Values{"apiKey": resendKey(), "fromEmail": "hello@localhost"}), []string{"fromEmail"}},

		{"elevenlabs: empty", elevenLabsSave(app.Values{}), []string{"apiKey"}},
		{"elevenlabs: key too short", elevenLabsSave(app.Values{"apiKey": "sk_short"}), []string{"apiKey"}},
		{"elevenlabs: voice id with punctuation", elevenLabsSave(app.Values{"apiKey": elevenLabsKey(), "voiceId": "voice-1!"}), []string{"voiceId"}},
		{"elevenlabs: voice id too long", elevenLabsSave(app.Values{"apiKey": elevenLabsKey(), "voiceId": strings.Repeat("a", 65)}), []string{"voiceId"}},
	}
	e := newEnv(t)
	ctx := context.Background()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			admin, _ := seedOrg(t, "Validation Dental")
			res, err := tt.call.save(ctx, e.svc, admin)
			wantCode(t, err, app.EValidation)
			if got := sortedKeys(app.ErrorFields(err)); !reflect.DeepEqual(got, tt.wantFields) {
				t.Errorf("fields = %v, want %v (%v)", got, tt.wantFields, app.ErrorFields(err))
			}
			if !reflect.DeepEqual(res, integrations.SaveResult{}) {
				t.Errorf("result = %+v, want the zero value", res)
			}
			if n := e.credentialRows(t, admin.OrgID); n != 0 {
				t.Errorf("%d credential rows stored, want none", n)
			}
			if st := e.statusOf(t, admin, tt.call.provider); st.Connected {
				t.Errorf("status = %+v, want not connected", st)
			}
			log := e.audit(t, admin.OrgID)
			if len(log) != 1 {
				t.Fatalf("audit log = %+v, want one entry", log)
			}
			want := app.AuditEntry{OrgID: admin.OrgID, ActorID: admin.UserID, Action: integrations.ActionSave,
				Provider: tt.call.provider, Outcome: app.OutcomeFailure,
				Detail: "invalid input: " + strings.Join(tt.wantFields, ", ")}
			got := log[0]
			want.At = got.At
			if got.At.IsZero() || got != want {
				t.Errorf("audit entry = %+v, want %+v", got, want)
			}
			e.assertNoLeak(t, admin.OrgID, tt.call.secrets, err)
		})
	}
	if n := len(e.sb.Vapi.Assistants(tests[5].call.secrets[0])); n != 0 {
		t.Errorf("the Vapi stand-in has %d assistants after refused input, want none", n)
	}
}

func TestSaveSuccess(t *testing.T) {
	ctx := context.Background()
	vk, vs := vapiKey(), webhookSecret()
	sid, token := twilioSID(), twilioToken()
	rk, rkLimited := resendKey(), resendKey("restricted")
	ek, ekLimited := elevenLabsKey(), elevenLabsKey("restricted")
	tests := []struct {
		name        string
		call        saveCall
		wantStored  app.Config
		wantDetails map[string]string
		wantLimited bool
		wantDetail  string // substring of SaveResult.Detail
		check       func(t *testing.T, res integrations.SaveResult)
	}{
		{
			name:       "vapi",
			call:       vapiSave(app.Values{"apiKey": "  " + vk + "\n", "webhookSecret": vs}),
			wantStored: app.VapiConfig{APIKey: app.NewSecret(vk), WebhookSecret: app.NewSecret(vs), Region: app.VapiUS},
			wantDetails: map[string]string{"apiKey": "••••" + vk[len(vk)-4:], "webhookSecret": "set",
				"region": "us"},
			wantDetail: "Vapi accepted the API key (US region). Inbound assistant created, outbound assistant created.",
			check: func(t *testing.T, res integrations.SaveResult) {
				if res.InboundAssistantID == "" || res.OutboundAssistantID == "" || res.InboundAssistantID == res.OutboundAssistantID {
					t.Errorf("assistant ids %q, %q", res.InboundAssistantID, res.OutboundAssistantID)
				}
			},
		},
		{
			name: "twilio",
			call: twilioSave(app.Values{"accountSid": sid, "authToken": token, "phoneNumber": "(202) 555-0123",
				"whatsappNumber": "whatsapp:+44 7911 123456"}),
			wantStored: app.TwilioConfig{AccountSID: sid, AuthToken: app.NewSecret(token), PhoneNumber: "+12025550123",
				WhatsAppNumber: "+447911123456"},
			wantDetails: map[string]string{"accountSid": "AC••••" + sid[len(sid)-4:], "authToken": "••••" + token[len(token)-4:],
				"phoneNumber": "+1202•••0123", "whatsappNumber": "+4479•••3456"},
			wantDetail: "active",
			check: func(t *testing.T, res integrations.SaveResult) {
				if res.MaskedPhone != "+1202•••0123" {
					t.Errorf("MaskedPhone = %q", res.MaskedPhone)
				}
			},
		},
		{
			name:        "resend full access",
			call:        resendSave(app.Values{"apiKey": rk, "fromEmail": " hello@acme.example "}),
			wantStored:  app.ResendConfig{APIKey: app.NewSecret(rk), FromEmail: "hello@acme.example"},
			wantDetails: map[string]string{"apiKey": "••••" + rk[len(rk)-4:], "fromEmail": "hello@acme.example"},
			wantDetail:  "full-access key",
		},
		{
			name:        "resend sending-only",
			call:        resendSave(app.Values{"apiKey": rkLimited}),
			wantStored:  app.ResendConfig{APIKey: app.NewSecret(rkLimited)},
			wantDetails: map[string]string{"apiKey": "••••" + rkLimited[len(rkLimited)-4:]},
			wantLimited: true,
			wantDetail:  resend.SendingOnlyDetail,
		},
		{
			name:        "elevenlabs full",
			call:        elevenLabsSave(app.Values{"apiKey": ek, "voiceId": "21m00Tcm4TlvDq8ikWAM"}),
			wantStored:  app.ElevenLabsConfig{APIKey: app.NewSecret(ek), VoiceID: "21m00Tcm4TlvDq8ikWAM"},
			wantDetails: map[string]string{"apiKey": "••••" + ek[len(ek)-4:], "voiceId": "21m00Tcm4TlvDq8ikWAM"},
			wantDetail:  "full key",
		},
		{
			name:        "elevenlabs without user read",
			call:        elevenLabsSave(app.Values{"apiKey": ekLimited}),
			wantStored:  app.ElevenLabsConfig{APIKey: app.NewSecret(ekLimited)},
			wantDetails: map[string]string{"apiKey": "••••" + ekLimited[len(ekLimited)-4:]},
			wantLimited: true,
			wantDetail:  elevenlabs.NoUserReadDetail,
		},
	}
	e := newEnv(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			admin, _ := seedOrg(t, "Success Dental")
			now := e.clock.Now()
			res, err := tt.call.save(ctx, e.svc, admin)
			if err != nil {
				t.Fatal(err)
			}
			if res.Provider != tt.call.provider || !res.LastVerified.Equal(now) || res.Limited != tt.wantLimited ||
				!strings.Contains(res.Detail, tt.wantDetail) {
				t.Errorf("result = %+v", res)
			}
			st := res.Status
			if !st.Connected || st.NeedsAttention || st.VerificationError != "" || st.LastVerified == nil ||
				!st.LastVerified.Equal(now) || !reflect.DeepEqual(st.Details, tt.wantDetails) {
				t.Errorf("status = %+v, want connected with details %v", st, tt.wantDetails)
			}
			if got := e.statusOf(t, admin, tt.call.provider); !reflect.DeepEqual(got, st) {
				t.Errorf("Status() = %+v, want the result's %+v", got, st)
			}
			stored, err := e.creds.Get(ctx, admin.OrgID, tt.call.provider)
			if want := e.withSigningCredential(t, tt.wantStored); err != nil || !reflect.DeepEqual(stored, want) {
				t.Errorf("stored = %#v, %v; want %#v", stored, err, want)
			}
			if tt.check != nil {
				tt.check(t, res)
			}
			log := e.audit(t, admin.OrgID)
			if len(log) != 1 || log[0].Outcome != app.OutcomeSuccess || log[0].Action != integrations.ActionSave ||
				log[0].Provider != tt.call.provider || log[0].ActorID != admin.UserID || log[0].Detail != res.Detail {
				t.Errorf("audit log = %+v", log)
			}
			e.assertNoLeak(t, admin.OrgID, tt.call.secrets, res)
		})
	}
}

func TestSaveRefusedKeepsPreviousCredentials(t *testing.T) {
	ctx := context.Background()
	sid := twilioSID()
	tests := []struct {
		name        string
		good, bad   saveCall
		wantMessage string
	}{
		{"vapi", vapiSave(app.Values{"apiKey": vapiKey()}), vapiSave(app.Values{"apiKey": vapiKey("invalid")}),
			"Vapi rejected the API key (401 Unauthorized)."},
		{"vapi key of the other region", vapiSave(app.Values{"apiKey": vapiKey()}),
			vapiSave(app.Values{"apiKey": vapiKey("eu"), "region": "us"}), "Vapi rejected the API key (401 Unauthorized)."},
		{"twilio", twilioSave(app.Values{"accountSid": sid, "authToken": twilioToken(), "phoneNumber": "+12025550123"}),
			twilioSave(app.Values{"accountSid": sid, "authToken": twilioToken("invalid"), "phoneNumber": "+12025550199"}),
			"Twilio rejected the Account SID and Auth Token"},
		{"twilio suspended account", twilioSave(app.Values{"accountSid": sid, "authToken": twilioToken(), "phoneNumber": "+12025550123"}),
			twilioSave(app.Values{"accountSid": sid, "authToken": twilioToken("suspended"), "phoneNumber": "+12025550199"}),
			"is suspended, not active"},
		{"resend", resendSave(app.Values{"apiKey": resendKey()}), resendSave(app.Values{"apiKey": resendKey("invalid")}),
			"Resend rejected the API key (403 Forbidden)"},
		{"elevenlabs", elevenLabsSave(app.Values{"apiKey": elevenLabsKey()}),
			elevenLabsSave(app.Values{"apiKey": elevenLabsKey("invalid")}), "ElevenLabs rejected the API key (401 Unauthorized)"},
	}
	e := newEnv(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			admin, _ := seedOrg(t, "Refused Dental")
			first, err := tt.good.save(ctx, e.svc, admin)
			if err != nil {
				t.Fatal(err)
			}
			before, err := e.creds.Get(ctx, admin.OrgID, tt.good.provider)
			if err != nil {
				t.Fatal(err)
			}
			mappingsBefore := e.mappings(t, admin.OrgID)
			e.clock.Set(e.clock.Now().Add(time.Hour))

			res, saveErr := tt.bad.save(ctx, e.svc, admin)
			wantCode(t, saveErr, app.EVerificationFailed)
			if msg := app.ErrorMessage(saveErr); !strings.Contains(msg, tt.wantMessage) {
				t.Errorf("message = %q, want it to contain %q", msg, tt.wantMessage)
			}
			if !reflect.DeepEqual(res, integrations.SaveResult{}) {
				t.Errorf("result = %+v, want the zero value", res)
			}
			after, err := e.creds.Get(ctx, admin.OrgID, tt.good.provider)
			if err != nil || !reflect.DeepEqual(after, before) {
				t.Errorf("stored after the refused save = %#v, %v; want the previous %#v", after, err, before)
			}
			if st := e.statusOf(t, admin, tt.good.provider); !reflect.DeepEqual(st, first.Status) {
				t.Errorf("status = %+v, want the previous %+v", st, first.Status)
			}
			if got := e.mappings(t, admin.OrgID); !reflect.DeepEqual(got, mappingsBefore) {
				t.Errorf("mappings changed: %+v, want %+v", got, mappingsBefore)
			}
			if tt.good.provider == app.Vapi {
				if n := len(e.sb.Vapi.Assistants(tt.bad.secrets[0])) + len(e.sb.VapiEU.Assistants(tt.bad.secrets[0])); n != 0 {
					t.Errorf("%d assistants created with the refused key", n)
				}
			}
			last := e.lastAudit(t, admin.OrgID)
			if last.Outcome != app.OutcomeFailure || last.Action != integrations.ActionSave || last.Detail != app.ErrorMessage(saveErr) {
				t.Errorf("audit entry = %+v", last)
			}
			e.assertNoLeak(t, admin.OrgID, append(tt.good.secrets, tt.bad.secrets...), saveErr)
		})
	}
}

func TestSaveProviderUnavailable(t *testing.T) {
	ctx := context.Background()
	sid := twilioSID()
	down := []saveCall{
		vapiSave(app.Values{"apiKey": vapiKey("down")}),
		twilioSave(app.Values{"accountSid": sid, "authToken": twilioToken("down"), "phoneNumber": "+12025550123"}),
		resendSave(app.Values{"apiKey": resendKey("down")}),
		elevenLabsSave(app.Values{"apiKey": elevenLabsKey("down")}),
	}
	slow := []saveCall{
		vapiSave(app.Values{"apiKey": vapiKey("slow")}),
		twilioSave(app.Values{"accountSid": sid, "authToken": twilioToken("slow"), "phoneNumber": "+12025550123"}),
		resendSave(app.Values{"apiKey": resendKey("slow")}),
		elevenLabsSave(app.Values{"apiKey": elevenLabsKey("slow")}),
	}
	healthy := []saveCall{
		vapiSave(app.Values{"apiKey": vapiKey()}),
		twilioSave(app.Values{"accountSid": sid, "authToken": twilioToken(), "phoneNumber": "+12025550123"}),
		resendSave(app.Values{"apiKey": resendKey()}),
		elevenLabsSave(app.Values{"apiKey": elevenLabsKey()}),
	}
	const timeout = 200 * time.Millisecond
	tests := []struct {
		name        string
		env         *env
		calls       []saveCall
		wantMessage string
	}{
		{"provider answers 503", newEnv(t), down, "is not available right now (503 Service Unavailable)"},
		{"provider too slow", newEnv(t, withTimeout(timeout)), slow, "timed out after 200ms"},
		{"nothing listens", newEnv(t, withAllURLs(apptest.ClosedURL(t))), healthy, "could not be reached (connection refused)"},
	}
	for _, tt := range tests {
		for _, call := range tt.calls {
			t.Run(tt.name+"/"+string(call.provider), func(t *testing.T) {
				admin, _ := seedOrg(t, "Unavailable Dental")
				start := time.Now()
				_, err := call.save(ctx, tt.env.svc, admin)
				wantCode(t, err, app.EProviderUnavailable)
				if elapsed := time.Since(start); elapsed > 5*timeout && tt.name == "provider too slow" {
					t.Errorf("the save took %v with a %v timeout", elapsed, timeout)
				}
				if msg := app.ErrorMessage(err); !strings.Contains(msg, tt.wantMessage) {
					t.Errorf("message = %q, want it to contain %q", msg, tt.wantMessage)
				}
				if n := tt.env.credentialRows(t, admin.OrgID); n != 0 {
					t.Errorf("%d credential rows stored", n)
				}
				if n := tt.env.mappingCount(t, admin.OrgID); n != 0 {
					t.Errorf("%d assistant mappings stored", n)
				}
				last := tt.env.lastAudit(t, admin.OrgID)
				if last.Outcome != app.OutcomeFailure || last.Detail != app.ErrorMessage(err) {
					t.Errorf("audit entry = %+v", last)
				}
				tt.env.assertNoLeak(t, admin.OrgID, call.secrets, err)
			})
		}
	}
}

func TestSaveTwilioRecordsOutboundNumber(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	admin, _ := seedOrg(t, "Outbound Dental")

	if _, err := e.svc.Save(ctx, admin, app.Twilio, app.Values{"accountSid": twilioSID(), "authToken": twilioToken(),
		"phoneNumber": "202-555-0123"}); err != nil {
		t.Fatal(err)
	}
	agent, err := e.db.OutboundAgent(ctx, admin.OrgID)
	if err != nil || agent.PhoneNumber != "+12025550123" || agent.VapiAssistantID != "" {
		t.Fatalf("outbound agent after Twilio = %+v, %v", agent, err)
	}

	res, err := e.svc.Save(ctx, admin, app.Vapi, app.Values{"apiKey": vapiKey()})
	if err != nil {
		t.Fatal(err)
	}
	agent, err = e.db.OutboundAgent(ctx, admin.OrgID)
	if err != nil || agent.PhoneNumber != "+12025550123" || agent.VapiAssistantID != res.OutboundAssistantID {
		t.Fatalf("outbound agent after Vapi = %+v, %v; want the outbound assistant %s", agent, err, res.OutboundAssistantID)
	}

	// A new Twilio number replaces the old one and keeps the assistant.
	if _, err := e.svc.Save(ctx, admin, app.Twilio, app.Values{"accountSid": twilioSID(), "authToken": twilioToken(),
		"phoneNumber": "+44 7911 123456"}); err != nil {
		t.Fatal(err)
	}
	agent, err = e.db.OutboundAgent(ctx, admin.OrgID)
	if err != nil || agent.PhoneNumber != "+447911123456" || agent.VapiAssistantID != res.OutboundAssistantID {
		t.Fatalf("outbound agent after the second Twilio save = %+v, %v", agent, err)
	}
}

func TestSaveVapiAfterTwilioUsesTheNumberWhenNoAgentExists(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	admin, _ := seedOrg(t, "Agentless Dental")
	// Twilio credentials stored without an outbound agent row (as before
	// this service existed).
	if _, err := e.creds.Save(ctx, app.Connection{OrgID: admin.OrgID, Config: app.TwilioConfig{AccountSID: twilioSID(),
		AuthToken: app.NewSecret(twilioToken()), PhoneNumber: "+12025550188"}, VerifiedAt: e.clock.Now()}); err != nil {
		t.Fatal(err)
	}
	res, err := e.svc.Save(ctx, admin, app.Vapi, app.Values{"apiKey": vapiKey()})
	if err != nil {
		t.Fatal(err)
	}
	agent, err := e.db.OutboundAgent(ctx, admin.OrgID)
	if err != nil || agent.PhoneNumber != "+12025550188" || agent.VapiAssistantID != res.OutboundAssistantID {
		t.Fatalf("outbound agent = %+v, %v", agent, err)
	}
}

// failingAudit is an audit store that is down.
type failingAudit struct{}

func (failingAudit) AppendAudit(context.Context, app.AuditEntry) error {
	return errors.New("audit store is down")
}

// A refused attempt stores nothing, so its audit entry goes to the audit
// store on its own: when that store is down, the refusal still answers as
// it would (the failed write logged), and nothing is stored.
func TestAuditFailureDoesNotChangeARefusal(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, func(c *envConfig) { c.audit = failingAudit{} })
	_, member := seedOrg(t, "Unaudited Dental")
	key := resendKey()
	_, err := e.svc.Save(ctx, member, app.Resend, app.Values{"apiKey": key})
	if app.ErrorCode(err) != app.EForbidden {
		t.Fatalf("a member's save = %v; want forbidden despite the audit store", err)
	}
	if !strings.Contains(e.logs.String(), "audit log write failed") {
		t.Errorf("the failed audit write was not logged:\n%s", e.logs.String())
	}
	if n := e.credentialRows(t, member.OrgID); n != 0 {
		t.Errorf("%d credential rows stored by a refused save", n)
	}
	e.assertNoLeak(t, member.OrgID, []string{key}, err)
}

// slowAudit is an audit store that answers only once released, and then
// hands each entry it wrote to written.
type slowAudit struct {
	release chan struct{}
	written chan app.AuditEntry
}

func (a slowAudit) AppendAudit(ctx context.Context, e app.AuditEntry) error {
	select {
	case <-a.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	a.written <- e
	return nil
}

// A slow audit store never holds the answer to a refused attempt past the
// request's deadline, and the entry is still written once it answers.
func TestSlowAuditDoesNotHoldTheAnswer(t *testing.T) {
	audit := slowAudit{release: make(chan struct{}), written: make(chan app.AuditEntry, 1)}
	e := newEnv(t, func(c *envConfig) { c.audit = audit })
	_, member := seedOrg(t, "Patient Dental")
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := e.svc.Save(ctx, member, app.Resend, app.Values{"apiKey": resendKey()})
	took := time.Since(start)
	if app.ErrorCode(err) != app.EForbidden {
		t.Fatalf("a member's save = %v; want forbidden", err)
	}
	if took > 2*time.Second {
		t.Errorf("the refusal answered after %v: it waited for the audit store past its 500 ms deadline", took)
	}
	close(audit.release)
	select {
	case got := <-audit.written:
		if got.OrgID != member.OrgID || got.ActorID != member.UserID || got.Action != integrations.ActionSave ||
			got.Outcome != app.OutcomeFailure {
			t.Errorf("audit entry = %+v", got)
		}
	case <-time.After(10 * time.Second):
		t.Error("the audit entry was never written")
	}
}

// Values that are not the provider's fields are ignored: not checked (even
// when another provider would refuse them), not stored, not shown, not
// logged.
func TestSaveIgnoresUnknownFields(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	vk, vs := vapiKey(), webhookSecret()
	sid, token := twilioSID(), twilioToken()
	rk, ek := resendKey(), elevenLabsKey()
	extra := func(in app.Values) (app.Values, []string) {
		stray := []string{"stray-" + apptest.RandomHex(8), "sk_" + apptest.RandomHex(16)}
		in["unknownField"] = stray[0]
		in["APIKEY"] = stray[1]
		in[""] = "nameless value"
		return in, stray
	}
	tests := []struct {
		name        string
		provider    app.Provider
		in          app.Values
		wantStored  app.Config
		wantDetails []string
	}{
		{"vapi with another provider's fields", app.Vapi,
			app.Values{"apiKey": vk, "webhookSecret": vs, "phoneNumber": "not a number", "fromEmail": "nobody"},
			app.VapiConfig{APIKey: app.NewSecret(vk), WebhookSecret: app.NewSecret(vs), Region: app.VapiUS},
			[]string{"apiKey", "region", "webhookSecret"}},
		{"twilio with another provider's fields", app.Twilio,
			app.Values{"accountSid": sid, "authToken": token, "phoneNumber": "+12025550123", "apiKey": "x", "region": "mars",
				"voiceId": "voice-1!"},
			app.TwilioConfig{AccountSID: sid, AuthToken: app.NewSecret(token), PhoneNumber: "+12025550123"},
			[]string{"accountSid", "authToken", "phoneNumber"}},
		{"resend with another provider's fields", app.Resend,
			app.Values{"apiKey": rk, "accountSid": "SK-not-a-sid", "whatsappNumber": "call me"},
			app.ResendConfig{APIKey: app.NewSecret(rk)},
			[]string{"apiKey"}},
		{"elevenlabs with another provider's fields", app.ElevenLabs,
			app.Values{"apiKey": ek, "fromEmail": "Acme <hello@acme.example>", "authToken": "short"},
			app.ElevenLabsConfig{APIKey: app.NewSecret(ek)},
			[]string{"apiKey"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			admin, _ := seedOrg(t, "Lenient Dental")
			in, stray := extra(tt.in)
			res, err := e.svc.Save(ctx, admin, tt.provider, in)
			if err != nil {
				t.Fatalf("save = %v, want the unknown fields ignored", err)
			}
			if got := sortedKeys(res.Status.Details); !reflect.DeepEqual(got, tt.wantDetails) {
				t.Errorf("status details %v, want only %v", res.Status.Details, tt.wantDetails)
			}
			stored, err := e.creds.Get(ctx, admin.OrgID, tt.provider)
			if want := e.withSigningCredential(t, tt.wantStored); err != nil || !reflect.DeepEqual(stored, want) {
				t.Errorf("stored = %#v, %v; want %#v", stored, err, want)
			}
			if last := e.lastAudit(t, admin.OrgID); last.Outcome != app.OutcomeSuccess || last.Detail != res.Detail {
				t.Errorf("audit entry = %+v", last)
			}
			e.assertNoLeak(t, admin.OrgID, append(stray, tt.in["apiKey"], tt.in["authToken"], tt.in["webhookSecret"]), res)
		})
	}
}

// withSigningCredential returns want, for a Vapi config with the id of the
// one signing credential the save made in the key's account.
func (e *env) withSigningCredential(t *testing.T, want app.Config) app.Config {
	t.Helper()
	vc, ok := want.(app.VapiConfig)
	if !ok {
		return want
	}
	cs := e.sb.Vapi.Credentials(vc.APIKey.Reveal())
	if len(cs) != 1 {
		t.Fatalf("the account holds %d signing credentials, want 1", len(cs))
	}
	vc.WebhookCredentialID = cs[0].ID
	return vc
}
