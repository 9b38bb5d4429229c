package integrations_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"byoc/app"
	"byoc/app/apptest"
	"byoc/app/integrations"
	"byoc/app/sandbox"
)

// auditedPath is one way a request reaches the audit log: its set-up, the
// request, and what it answers and writes to the log when nothing fails.
type auditedPath struct {
	name string
	// setup prepares the org for the request (nil: nothing).
	setup func(t *testing.T, e *env, admin app.Principal)
	// act makes the request as admin (or as the org's member).
	act func(ctx context.Context, e *env, admin, member app.Principal) error
	// code is what the request answers ("": success).
	code string
	// changes says that the request stores a change (a connection, a
	// recorded check, a setting, a secret, a reveal), with its entries.
	changes bool
	// want are the entries the request writes, oldest first.
	want []wantEntry
	// after, when set, checks more once the request was refused by the
	// audit log (secret is the webhook secret setup stored, if any).
	after func(t *testing.T, e *env, admin app.Principal)
}

// wantEntry is an audit entry as a path writes it.
type wantEntry struct {
	action, outcome string
	// system: written without an actor (the background re-verification);
	// member: written with the member as its actor.
	system, member bool
}

func succeeded(action string) wantEntry {
	return wantEntry{action: action, outcome: app.OutcomeSuccess}
}
func refused(action string) wantEntry { return wantEntry{action: action, outcome: app.OutcomeFailure} }

// Keys the sandbox accepted when saved and refuses when checked again,
// stored past the service (as a key revoked at the provider since).
func storeRefusedResend(t *testing.T, e *env, admin app.Principal) {
	t.Helper()
	cfg := app.ResendConfig{APIKey: app.NewSecret(resendKey("invalid"))}
	if _, err := e.creds.Save(context.Background(), app.Connection{OrgID: admin.OrgID, Config: cfg, VerifiedAt: e.clock.Now()}); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Hour)
}

func saveResend(t *testing.T, e *env, admin app.Principal) {
	t.Helper()
	if _, err := e.svc.Save(context.Background(), admin, app.Resend, app.Values{"apiKey": resendKey()}); err != nil {
		t.Fatal(err)
	}
	// A check after this one records a later time.
	e.clock.Advance(time.Hour)
}

func saveVapi(t *testing.T, e *env, admin app.Principal) {
	t.Helper()
	if _, err := e.svc.Save(context.Background(), admin, app.Vapi, app.Values{"apiKey": vapiKey(), "webhookSecret": webhookSecret()}); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Hour)
}

// googleConnect runs Google's sign-in for p through the service, the
// consent given, and returns what the callback answered.
func googleConnect(ctx context.Context, e *env, p app.Principal) error {
	binding := "csrf-" + apptest.RandomHex(8)
	authURL, err := e.svc.ConnectURL(ctx, p, binding)
	if err != nil {
		return err
	}
	back, err := sandbox.GoogleConsent(ctx, nil, authURL, sandbox.GoogleConsentChoice{})
	if err != nil {
		return err
	}
	q := back.Query()
	_, err = e.svc.Callback(ctx, p, binding, integrations.CallbackQuery{State: q.Get("state"), Code: q.Get("code"), Error: q.Get("error")})
	return err
}

// auditedPaths are every path that writes to the audit log about an org's
// connections: each change, and the attempts that change nothing.
func auditedPaths() []auditedPath {
	return []auditedPath{{
		name: "first save",
		act: func(ctx context.Context, e *env, admin, _ app.Principal) error {
			_, err := e.svc.Save(ctx, admin, app.Resend, app.Values{"apiKey": resendKey()})
			return err
		},
		changes: true, want: []wantEntry{succeeded(integrations.ActionSave)},
	}, {
		name:  "save over a stored connection",
		setup: saveResend,
		act: func(ctx context.Context, e *env, admin, _ app.Principal) error {
			_, err := e.svc.Save(ctx, admin, app.Resend, app.Values{"apiKey": resendKey()})
			return err
		},
		changes: true, want: []wantEntry{succeeded(integrations.ActionSave)},
	}, {
		name: "update",
		setup: func(t *testing.T, e *env, admin app.Principal) {
			if _, err := e.svc.Save(context.Background(), admin, app.Twilio, app.Values{"accountSid": twilioSID(),
				"authToken": twilioToken(), "phoneNumber": "+12025550123"}); err != nil {
				t.Fatal(err)
			}
		},
		act: func(ctx context.Context, e *env, admin, _ app.Principal) error {
			_, err := e.svc.Update(ctx, admin, app.Twilio, app.Values{"phoneNumber": "+12025550199"})
			return err
		},
		changes: true, want: []wantEntry{succeeded(integrations.ActionSave)},
	}, {
		name: "first Vapi save",
		act: func(ctx context.Context, e *env, admin, _ app.Principal) error {
			_, err := e.svc.Save(ctx, admin, app.Vapi, app.Values{"apiKey": vapiKey()})
			return err
		},
		changes: true, want: []wantEntry{succeeded(integrations.ActionSave)},
	}, {
		// A save that replaces the stored webhook secret is a rotation
		// too: both entries go with the one change.
		name:  "Vapi save with a new webhook secret",
		setup: saveVapi,
		act: func(ctx context.Context, e *env, admin, _ app.Principal) error {
			stored, err := e.creds.VapiFresh(ctx, admin.OrgID)
			if err != nil {
				return err
			}
			_, err = e.svc.Save(ctx, admin, app.Vapi, app.Values{"apiKey": stored.APIKey.Reveal(), "webhookSecret": webhookSecret()})
			return err
		},
		changes: true, want: []wantEntry{succeeded(integrations.ActionRotateSecret), succeeded(integrations.ActionSave)},
	}, {
		name:  "disconnect",
		setup: saveResend,
		act: func(ctx context.Context, e *env, admin, _ app.Principal) error {
			_, err := e.svc.Disconnect(ctx, admin, app.Resend)
			return err
		},
		changes: true, want: []wantEntry{succeeded(integrations.ActionDisconnect)},
	}, {
		name:  "Vapi disconnect",
		setup: saveVapi,
		act: func(ctx context.Context, e *env, admin, _ app.Principal) error {
			_, err := e.svc.Disconnect(ctx, admin, app.Vapi)
			return err
		},
		changes: true, want: []wantEntry{succeeded(integrations.ActionDisconnect)},
	}, {
		name:  "test connection, passed",
		setup: saveResend,
		act: func(ctx context.Context, e *env, admin, _ app.Principal) error {
			_, err := e.svc.Verify(ctx, admin, app.Resend)
			return err
		},
		changes: true, want: []wantEntry{succeeded(integrations.ActionVerify)},
	}, {
		name:  "test connection, refused by the provider",
		setup: storeRefusedResend,
		act: func(ctx context.Context, e *env, admin, _ app.Principal) error {
			_, err := e.svc.Verify(ctx, admin, app.Resend)
			return err
		},
		code: app.EVerificationFailed, changes: true, want: []wantEntry{refused(integrations.ActionVerify)},
	}, {
		name:  "background re-verification, passed",
		setup: saveResend,
		act: func(ctx context.Context, e *env, admin, _ app.Principal) error {
			_, err := e.svc.Recheck(ctx, admin.OrgID, app.Resend)
			return err
		},
		changes: true, want: []wantEntry{{action: integrations.ActionVerify, outcome: app.OutcomeSuccess, system: true}},
	}, {
		name:  "background re-verification, refused by the provider",
		setup: storeRefusedResend,
		act: func(ctx context.Context, e *env, admin, _ app.Principal) error {
			_, err := e.svc.Recheck(ctx, admin.OrgID, app.Resend)
			return err
		},
		code: app.EVerificationFailed, changes: true,
		want: []wantEntry{{action: integrations.ActionVerify, outcome: app.OutcomeFailure, system: true}},
	}, {
		name:  "webhook signing",
		setup: saveVapi,
		act: func(ctx context.Context, e *env, admin, _ app.Principal) error {
			off := false
			_, err := e.svc.SetWebhookHMACOnly(ctx, admin, &off)
			return err
		},
		changes: true, want: []wantEntry{succeeded(integrations.ActionWebhookSigning)},
	}, {
		name:  "webhook secret rotation",
		setup: saveVapi,
		act: func(ctx context.Context, e *env, admin, _ app.Principal) error {
			_, err := e.svc.RotateWebhookSecret(ctx, admin)
			return err
		},
		changes: true, want: []wantEntry{succeeded(integrations.ActionRotateSecret)},
		after: func(t *testing.T, e *env, admin app.Principal) {
			// The assistants sign with the stored secret again.
			stored := e.storedVapi(t, admin.OrgID)
			in, out := mappedIDs(t, e, admin.OrgID)
			assertServers(t, e.sb.Vapi, stored.APIKey.Reveal(), []string{in, out}, stored.WebhookSecret.Reveal())
		},
	}, {
		name:  "webhook secret reveal",
		setup: saveVapi,
		act: func(ctx context.Context, e *env, admin, _ app.Principal) error {
			_, _, err := e.svc.RevealWebhookSecret(ctx, admin)
			return err
		},
		changes: true, want: []wantEntry{succeeded(integrations.ActionRevealSecret)},
		after: func(t *testing.T, e *env, admin app.Principal) {
			// The secret was not shown, so it can still be.
			got, _, err := e.svc.RevealWebhookSecret(context.Background(), admin)
			if err != nil || got.Reveal() != e.storedVapi(t, admin.OrgID).WebhookSecret.Reveal() {
				t.Errorf("reveal after the refused one: %v", err)
			}
		},
	}, {
		name: "Google Calendar connect",
		act: func(ctx context.Context, e *env, admin, _ app.Principal) error {
			return googleConnect(ctx, e, admin)
		},
		changes: true, want: []wantEntry{succeeded(integrations.ActionSave)},
	}, {
		name: "Google Calendar disconnect",
		setup: func(t *testing.T, e *env, admin app.Principal) {
			e.connectGoogle(t, admin)
		},
		act: func(ctx context.Context, e *env, admin, _ app.Principal) error {
			_, err := e.svc.Disconnect(ctx, admin, app.GoogleCalendar)
			return err
		},
		changes: true, want: []wantEntry{succeeded(integrations.ActionDisconnect)},
	}, {
		// Attempts that store nothing: their entry is written on its own.
		name: "a member's save",
		act: func(ctx context.Context, e *env, _, member app.Principal) error {
			_, err := e.svc.Save(ctx, member, app.Resend, app.Values{"apiKey": resendKey()})
			return err
		},
		code: app.EForbidden, want: []wantEntry{{action: integrations.ActionSave, outcome: app.OutcomeFailure, member: true}},
	}, {
		name: "a save the provider refuses",
		act: func(ctx context.Context, e *env, admin, _ app.Principal) error {
			_, err := e.svc.Save(ctx, admin, app.Resend, app.Values{"apiKey": resendKey("invalid")})
			return err
		},
		code: app.EVerificationFailed, want: []wantEntry{refused(integrations.ActionSave)},
	}, {
		name: "test connection, provider down",
		setup: func(t *testing.T, e *env, admin app.Principal) {
			cfg := app.ResendConfig{APIKey: app.NewSecret(resendKey("down"))}
			if _, err := e.creds.Save(context.Background(), app.Connection{OrgID: admin.OrgID, Config: cfg, VerifiedAt: e.clock.Now()}); err != nil {
				t.Fatal(err)
			}
		},
		act: func(ctx context.Context, e *env, admin, _ app.Principal) error {
			_, err := e.svc.Verify(ctx, admin, app.Resend)
			return err
		},
		code: app.EProviderUnavailable, want: []wantEntry{refused(integrations.ActionVerify)},
	}, {
		name: "disconnect of nothing",
		act: func(ctx context.Context, e *env, admin, _ app.Principal) error {
			_, err := e.svc.Disconnect(ctx, admin, app.Twilio)
			return err
		},
		code: app.ENotConfigured, want: []wantEntry{refused(integrations.ActionDisconnect)},
	}, {
		name: "second reveal",
		setup: func(t *testing.T, e *env, admin app.Principal) {
			saveVapi(t, e, admin)
			if _, _, err := e.svc.RevealWebhookSecret(context.Background(), admin); err != nil {
				t.Fatal(err)
			}
		},
		act: func(ctx context.Context, e *env, admin, _ app.Principal) error {
			_, _, err := e.svc.RevealWebhookSecret(ctx, admin)
			return err
		},
		code: app.EConflict, want: []wantEntry{refused(integrations.ActionRevealSecret)},
	}}
}

// storedRows is everything the org has stored of its connections, read
// raw past every cache: each credential row whole (ciphertext,
// verification state, settings, times), the assistant mappings and the
// outbound agent.
func (e *env) storedRows(t *testing.T, orgID string) string {
	t.Helper()
	var rows string
	if err := e.db.Pool.QueryRow(context.Background(), `select
		coalesce((select json_agg(c order by c.provider)::text from org_credentials c where c.org_id = $1), '-') || ' | ' ||
		coalesce((select json_agg(m order by m.assistant_role)::text from assistant_org_mapping m where m.org_id = $1), '-') || ' | ' ||
		coalesce((select row_to_json(o)::text from outbound_agent_config o where o.org_id = $1), '-')`, orgID).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	return rows
}

// Every path writes exactly the entries it should: one per change (a save
// that replaces the webhook secret: the save's and the rotation's), one
// per attempt that changed nothing, with its actor, action, provider and
// outcome.
func TestEveryAuditedPathWritesItsEntries(t *testing.T) {
	e := newEnv(t, withGoogle)
	for _, tt := range auditedPaths() {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			admin, member := seedOrg(t, "Accountable Dental")
			if tt.setup != nil {
				tt.setup(t, e, admin)
			}
			before := len(e.audit(t, admin.OrgID))
			err := tt.act(ctx, e, admin, member)
			wantCode(t, err, tt.code)
			log := e.audit(t, admin.OrgID)
			got := log[:len(log)-before]
			slices.Reverse(got)
			if len(got) != len(tt.want) {
				t.Fatalf("%d new audit entries %+v, want %d", len(got), got, len(tt.want))
			}
			for i, w := range tt.want {
				actor := admin.UserID
				switch {
				case w.system:
					actor = ""
				case w.member:
					actor = member.UserID
				}
				g := got[i]
				if g.Action != w.action || g.Outcome != w.outcome || g.ActorID != actor || g.OrgID != admin.OrgID || g.Provider == "" {
					t.Errorf("entry %d = %+v, want %s %s by %q", i, g, w.action, w.outcome, actor)
				}
			}
		})
	}
}

// When the audit log refuses a change's entry, the change is not stored
// either: the request fails as a failed write does (EInternal, its cause
// in the log only) and everything stored stays as it was, and once the log
// takes entries again the same request works. An attempt that changes
// nothing still answers its own answer.
func TestARefusedAuditEntryRefusesTheChange(t *testing.T) {
	e := newEnv(t, withGoogle)
	for _, tt := range auditedPaths() {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			admin, member := seedOrg(t, "Unrecorded Dental")
			if tt.setup != nil {
				tt.setup(t, e, admin)
			}
			e.clock.Advance(time.Minute)
			before, entries := e.storedRows(t, admin.OrgID), len(e.audit(t, admin.OrgID))
			revocations := e.gsb.RevokeRequests()

			lift := refuseWrites(t, admin.OrgID, "audit_log", "insert")
			err := tt.act(ctx, e, admin, member)
			lift()

			want := tt.code
			if tt.changes {
				want = app.EInternal
			}
			wantCode(t, err, want)
			if strings.Contains(app.ErrorMessage(err), "refused by the test") {
				t.Errorf("the answer tells the database's words: %q", app.ErrorMessage(err))
			}
			if after := e.storedRows(t, admin.OrgID); after != before {
				t.Errorf("stored after the refused entry:\n%s\nwant as before:\n%s", after, before)
			}
			if n := len(e.audit(t, admin.OrgID)); n != entries {
				t.Errorf("%d audit entries, want the %d from before", n, entries)
			}
			if tt.name == "Google Calendar connect" && e.gsb.RevokeRequests() != revocations+1 {
				t.Errorf("%d revocations of the grant that was not kept, want 1", e.gsb.RevokeRequests()-revocations)
			}
			if tt.after != nil {
				tt.after(t, e, admin)
			}
			if !tt.changes {
				return
			}
			// The same request works once the log takes entries again
			// (the reveal was repeated by after).
			if tt.name == "webhook secret reveal" {
				return
			}
			if err := tt.act(ctx, e, admin, member); app.ErrorCode(err) != tt.code {
				t.Errorf("the request again: %v, want %q", err, tt.code)
			}
		})
	}
}
