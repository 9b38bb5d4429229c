package integrations_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"byoc/app"
	"byoc/app/apptest"
	"byoc/app/config"
	"byoc/app/integrations"
)

// storedVapi reads the org's stored Vapi config from the database.
func (e *env) storedVapi(t *testing.T, orgID string) app.VapiConfig {
	t.Helper()
	cfg, err := e.creds.VapiFresh(context.Background(), orgID)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestRotateWebhookSecret: a rotation gives both assistants a new signing
// credential, stores the new secret and keeps the replaced one for the
// grace period by the service's clock; a save inside the grace period
// keeps it, a save after drops it and deletes its signing credential.
func TestRotateWebhookSecret(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	admin, member := seedOrg(t, "Rotation Dental")
	key, secret := vapiKey(), webhookSecret()
	saved, err := e.svc.Save(ctx, admin, app.Vapi, app.Values{"apiKey": key, "webhookSecret": secret})
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{saved.InboundAssistantID, saved.OutboundAssistantID}
	before := e.storedVapi(t, admin.OrgID)

	if _, err := e.svc.RotateWebhookSecret(ctx, member); app.ErrorCode(err) != app.EForbidden {
		t.Fatalf("a member: %v, want forbidden", err)
	}
	res, err := e.svc.RotateWebhookSecret(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	next := res.Secret.Reveal()
	if next == secret || len(next) != 43 {
		t.Fatalf("new secret of %d characters", len(next))
	}
	if want := e.clock.Now().UTC().Truncate(time.Microsecond).Add(integrations.DefaultWebhookSecretGrace); !res.PreviousUntil.Equal(want) {
		t.Errorf("previous accepted until %v, want %v", res.PreviousUntil, want)
	}
	assertServers(t, e.sb.Vapi, key, ids, next)
	stored := e.storedVapi(t, admin.OrgID)
	if stored.WebhookSecret.Reveal() != next || stored.PreviousWebhookSecret.Reveal() != secret ||
		stored.PreviousWebhookCredentialID != before.WebhookCredentialID || stored.WebhookCredentialID == before.WebhookCredentialID {
		t.Errorf("stored after the rotation: credential %s, previous credential %s (before: %s)",
			stored.WebhookCredentialID, stored.PreviousWebhookCredentialID, before.WebhookCredentialID)
	}
	if res.Status.WebhookSecret == nil || res.Status.WebhookSecret.RevealedAt == nil || res.Status.WebhookSecret.PreviousUntil == nil {
		t.Errorf("status %+v", res.Status.WebhookSecret)
	}
	e.assertNoLeak(t, admin.OrgID, []string{secret, next}, res.Status)

	t.Run("a save inside the grace period keeps the previous secret", func(t *testing.T) {
		e.clock.Advance(time.Hour)
		if _, err := e.svc.Save(ctx, admin, app.Vapi, app.Values{"apiKey": key}); err != nil {
			t.Fatal(err)
		}
		s := e.storedVapi(t, admin.OrgID)
		if s.WebhookSecret.Reveal() != next || s.PreviousWebhookSecret.Reveal() != secret || !s.PreviousWebhookSecretUntil.Equal(res.PreviousUntil) {
			t.Errorf("after the save: previous kept %v until %v", s.PreviousWebhookSecret.Reveal() == secret, s.PreviousWebhookSecretUntil)
		}
		if n := len(e.sb.Vapi.Credentials(key)); n != 2 {
			t.Errorf("the account holds %d signing credentials, want the new one and the one in grace", n)
		}
		if st := e.statusOf(t, admin, app.Vapi); st.WebhookSecret == nil || st.WebhookSecret.RevealedAt == nil {
			t.Errorf("a save with the same secret forgot that it was shown: %+v", st.WebhookSecret)
		}
	})
	t.Run("a save after the grace period drops it", func(t *testing.T) {
		e.clock.Advance(integrations.DefaultWebhookSecretGrace)
		if _, err := e.svc.Save(ctx, admin, app.Vapi, app.Values{"apiKey": key}); err != nil {
			t.Fatal(err)
		}
		if s := e.storedVapi(t, admin.OrgID); !s.PreviousWebhookSecret.IsZero() || s.PreviousWebhookCredentialID != "" {
			t.Errorf("the previous secret is still stored")
		}
		if n := len(e.sb.Vapi.Credentials(key)); n != 1 {
			t.Errorf("the account holds %d signing credentials, want 1", n)
		}
	})
	t.Run("a save with a new secret can be revealed again", func(t *testing.T) {
		other := webhookSecret()
		if _, err := e.svc.Save(ctx, admin, app.Vapi, app.Values{"apiKey": key, "webhookSecret": other}); err != nil {
			t.Fatal(err)
		}
		got, _, err := e.svc.RevealWebhookSecret(ctx, admin)
		if err != nil || got.Reveal() != other {
			t.Fatalf("reveal: %v", err)
		}
		if _, _, err := e.svc.RevealWebhookSecret(ctx, admin); app.ErrorCode(err) != app.EConflict {
			t.Errorf("a second reveal: %v, want conflict", err)
		}
	})
}

// TestRevealOnceConcurrently: of many reveals racing on two instances,
// exactly one shows the secret.
func TestRevealOnceConcurrently(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	admin, _ := seedOrg(t, "Racing Dental")
	if _, err := e.svc.Save(ctx, admin, app.Vapi, app.Values{"apiKey": vapiKey()}); err != nil {
		t.Fatal(err)
	}
	other := e.build(t, nil)
	var shown, refused atomic.Int32
	done := make(chan struct{})
	for i := range 8 {
		svc := e.svc
		if i%2 == 1 {
			svc = other.Integrations
		}
		go func() {
			defer func() { done <- struct{}{} }()
			_, _, err := svc.RevealWebhookSecret(ctx, admin)
			switch app.ErrorCode(err) {
			case "":
				shown.Add(1)
			case app.EConflict:
				refused.Add(1)
			default:
				t.Errorf("reveal: %v", err)
			}
		}()
	}
	for range 8 {
		<-done
	}
	if shown.Load() != 1 || refused.Load() != 7 {
		t.Errorf("%d reveals showed the secret, %d were refused; want 1 and 7", shown.Load(), refused.Load())
	}
}

// vapiRefusing serves the Vapi stand-in, except that while on the PATCH
// requests from the from-th to the to-th (0: every one after) are answered
// as Vapi answers when it is down.
type vapiRefusing struct {
	next     http.Handler
	patches  atomic.Int32
	from, to int32
	on       atomic.Bool
}

func (v *vapiRefusing) refuse() bool {
	n := v.patches.Add(1)
	return n >= v.from && (v.to == 0 || n <= v.to)
}

func (v *vapiRefusing) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPatch && v.on.Load() && v.refuse() {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"message":"Service Unavailable","statusCode":503}`))
		return
	}
	v.next.ServeHTTP(w, r)
}

// TestRotateFailsClosed: when Vapi refuses a PATCH half-way, or cannot be
// reached, nothing is stored, the assistants already changed sign with the
// stored secret again, the new signing credential is gone, and the error
// says why; every attempt is audited.
func TestRotateFailsClosed(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	refusing := &vapiRefusing{next: e.sb.Handler(), from: 2, to: 2}
	srv := httptest.NewServer(refusing)
	t.Cleanup(srv.Close)
	sys := e.build(t, func(c *config.Config) { c.URLs.Vapi = e.sb.BaseURLs(srv.URL).Vapi })
	svc := sys.Integrations

	admin, _ := seedOrg(t, "Refused Dental")
	key, secret := vapiKey(), webhookSecret()
	saved, err := svc.Save(ctx, admin, app.Vapi, app.Values{"apiKey": key, "webhookSecret": secret})
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{saved.InboundAssistantID, saved.OutboundAssistantID}
	before := e.storedVapi(t, admin.OrgID)

	check := func(t *testing.T, err error, code string) {
		t.Helper()
		if app.ErrorCode(err) != code || !strings.Contains(app.ErrorMessage(err), "not rotated") {
			t.Fatalf("rotate: %v (%s), want %s saying it was not rotated", err, app.ErrorCode(err), code)
		}
		assertServers(t, e.sb.Vapi, key, ids, secret)
		assertOneSigningCredential(t, e.sb.Vapi, key)
		after := e.storedVapi(t, admin.OrgID)
		if after.WebhookSecret.Reveal() != secret || after.WebhookCredentialID != before.WebhookCredentialID ||
			!after.PreviousWebhookSecret.IsZero() {
			t.Errorf("the stored config changed")
		}
		if a := e.lastAudit(t, admin.OrgID); a.Action != integrations.ActionRotateSecret || a.Outcome != app.OutcomeFailure {
			t.Errorf("last audit %+v", a)
		}
		e.assertNoLeak(t, admin.OrgID, []string{secret}, err)
	}
	t.Run("the second PATCH refused", func(t *testing.T) {
		refusing.on.Store(true)
		defer refusing.on.Store(false)
		_, err := svc.RotateWebhookSecret(ctx, admin)
		check(t, err, app.EProviderUnavailable)
	})
	t.Run("Vapi down for the undo too", func(t *testing.T) {
		refusing.patches.Store(0)
		refusing.to = 0
		refusing.on.Store(true)
		_, err := svc.RotateWebhookSecret(ctx, admin)
		refusing.on.Store(false)
		if app.ErrorCode(err) != app.EProviderUnavailable || !strings.Contains(app.ErrorMessage(err), saved.InboundAssistantID) {
			t.Fatalf("rotate: %v", err)
		}
		// The inbound assistant signs with the new credential, which is
		// kept; nothing is stored, so its events are refused (fail
		// closed) until a rotation succeeds, which repairs it.
		if s, _ := e.sb.Vapi.Signing(key, saved.InboundAssistantID); s.Mode != "hmac" || s.Secret == "" || s.Secret == secret {
			t.Errorf("the inbound assistant signs with %s, want the kept new credential", s.Mode)
		}
		if e.storedVapi(t, admin.OrgID).WebhookSecret.Reveal() != secret {
			t.Errorf("the stored secret changed")
		}
		res, err := svc.RotateWebhookSecret(ctx, admin)
		if err != nil {
			t.Fatal(err)
		}
		assertServers(t, e.sb.Vapi, key, ids, res.Secret.Reveal())
		secret = res.Secret.Reveal()
		before = e.storedVapi(t, admin.OrgID)
	})
	t.Run("Vapi unreachable", func(t *testing.T) {
		down := e.build(t, func(c *config.Config) { c.URLs.Vapi = apptest.ClosedURL(t) })
		_, err := down.Integrations.RotateWebhookSecret(ctx, admin)
		if app.ErrorCode(err) != app.EProviderUnavailable {
			t.Fatalf("rotate: %v", err)
		}
		assertServers(t, e.sb.Vapi, key, ids, secret)
		if after := e.storedVapi(t, admin.OrgID); after.WebhookCredentialID != before.WebhookCredentialID {
			t.Errorf("the stored config changed")
		}
	})
}

// TestFailedRotationOfAnOrgWithoutItsOwnSecret: an org whose stored Vapi
// credentials hold no webhook secret of their own (moved from the old
// platform) is verified with the server's shared secret. A rotation that
// fails half-way points the assistant it changed back at that shared
// secret, never at an empty server that nothing verifies; without a shared
// secret configured, it says the assistant is stuck.
func TestFailedRotationOfAnOrgWithoutItsOwnSecret(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	refusing := &vapiRefusing{next: e.sb.Handler(), from: 2, to: 2}
	srv := httptest.NewServer(refusing)
	t.Cleanup(srv.Close)
	const shared = "shared-platform-webhook-secret-0123456789"
	for _, withShared := range []bool{true, false} {
		sys := e.build(t, func(c *config.Config) {
			c.URLs.Vapi = e.sb.BaseURLs(srv.URL).Vapi
			c.VapiWebhookSecret = app.Secret{}
			if withShared {
				c.VapiWebhookSecret = app.NewSecret(shared)
			}
		})
		admin, _ := seedOrg(t, "Legacy Dental")
		key := vapiKey()
		saved, err := sys.Integrations.Save(ctx, admin, app.Vapi, app.Values{"apiKey": key})
		if err != nil {
			t.Fatal(err)
		}
		// As the old platform left it: no secret of its own.
		legacy := e.storedVapi(t, admin.OrgID)
		legacy.WebhookSecret, legacy.WebhookCredentialID = app.Secret{}, ""
		if _, err := e.creds.Save(ctx, app.Connection{OrgID: admin.OrgID, Config: legacy, VerifiedAt: time.Now(),
			Assistants: []app.AssistantMapping{
				{VapiAssistantID: saved.InboundAssistantID, OrgID: admin.OrgID, Role: app.Inbound},
				{VapiAssistantID: saved.OutboundAssistantID, OrgID: admin.OrgID, Role: app.Outbound}}}); err != nil {
			t.Fatal(err)
		}
		refusing.patches.Store(0)
		refusing.on.Store(true)
		_, err = sys.Integrations.RotateWebhookSecret(ctx, admin)
		refusing.on.Store(false)
		if err == nil {
			t.Fatal("the rotation succeeded although Vapi refused a PATCH")
		}
		got, _ := e.sb.Vapi.Signing(key, saved.InboundAssistantID)
		if withShared {
			if got.Mode != "secret" || got.Secret != shared {
				t.Fatalf("with a shared secret: the inbound assistant signs with %q, want the shared secret back", got.Mode)
			}
			continue
		}
		if got.Mode == "" || !strings.Contains(app.ErrorMessage(err), saved.InboundAssistantID) {
			t.Fatalf("without a shared secret: assistant signing %q, error %q: want it kept on the new credential and named",
				got.Mode, app.ErrorMessage(err))
		}
	}
}
