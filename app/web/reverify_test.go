package web_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"byoc/app"
)

// withReverifyInterval sets REVERIFY_INTERVAL.
func withReverifyInterval(d time.Duration) envOption {
	return func(s *envSetup) { s.cfg.ReverifyInterval = d }
}

// TestDashboardNamesConnectionsNeedingAttention: a connection whose last
// passed check is older than twice REVERIFY_INTERVAL shows "Not checked
// recently"; one banner names every connection that needs attention (that
// one and a failing one, with its reason), for admins and members alike;
// a fresh connection is in neither; with the checks off nothing is stale.
func TestDashboardNamesConnectionsNeedingAttention(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, withReverifyInterval(time.Hour))
	b, _, orgID := e.admin()
	store := func(cfg app.Config, verified time.Time) {
		t.Helper()
		if _, err := e.creds.Save(ctx, app.Connection{OrgID: orgID, Config: cfg, VerifiedAt: verified}); err != nil {
			t.Fatal(err)
		}
	}
	resendKey := "re_" + strings.Repeat("a1", 10)
	store(app.ResendConfig{APIKey: app.NewSecret(resendKey), FromEmail: "desk@example.com"}, time.Now().Add(-3*time.Hour))
	store(app.ElevenLabsConfig{APIKey: app.NewSecret("sk_" + strings.Repeat("b2", 12))}, time.Now().Add(-90*time.Minute))

	page := b.get("/dashboard/integrations")
	d := page.doc(t)
	if got := strings.TrimSpace(testid(d, "card-resend-stale").Text()); got != "Not checked recently" {
		t.Fatalf("Resend, last verified 3 hours ago with a 1-hour interval: stale badge %q", got)
	}
	if testid(d, "card-elevenlabs-stale").Length() != 0 {
		t.Fatal("a connection verified 90 minutes ago (within twice the interval) shows Not checked recently")
	}
	if testid(d, "card-twilio-stale").Length() != 0 {
		t.Fatal("a provider that is not connected shows Not checked recently")
	}
	banner := testid(d, "attention-banner")
	if banner.Length() != 1 || testid(d, "attention-resend").Length() != 1 || testid(d, "attention-elevenlabs").Length() != 0 {
		t.Fatalf("banner: %q", banner.Text())
	}
	if !strings.Contains(banner.Text(), "One connection needs attention") || !strings.Contains(banner.Text(), "Resend") {
		t.Fatalf("banner: %q", banner.Text())
	}

	// ElevenLabs starts failing: the one banner names both, the failing one
	// with its reason.
	reason := "ElevenLabs refused the API key."
	if _, err := e.creds.RecordVerification(ctx, orgID, app.ElevenLabs, time.Now(), app.Errorf(app.EVerificationFailed, "%s", reason)); err != nil {
		t.Fatal(err)
	}
	for _, who := range []string{"admin", "member"} {
		br := b
		if who == "member" {
			br, _ = e.member(orgID)
		}
		d = br.get("/dashboard/integrations").doc(t)
		if n := testid(d, "attention-banner").Length(); n != 1 {
			t.Fatalf("%s: %d banners, want one", who, n)
		}
		banner = testid(d, "attention-banner")
		if !strings.Contains(banner.Text(), "2 connections need attention") ||
			!strings.Contains(testid(d, "attention-elevenlabs").Text(), reason) ||
			!strings.Contains(testid(d, "attention-resend").Text(), "Resend") {
			t.Fatalf("%s: banner %q", who, banner.Text())
		}
		if strings.Contains(br.get("/dashboard/integrations").body, resendKey) {
			t.Fatalf("%s: the dashboard reveals a key", who)
		}
	}

	// Everything fine again: no banner.
	for _, p := range []app.Provider{app.Resend, app.ElevenLabs} {
		if _, err := e.creds.RecordVerification(ctx, orgID, p, time.Now(), nil); err != nil {
			t.Fatal(err)
		}
	}
	d = b.get("/dashboard/integrations").doc(t)
	if testid(d, "attention-banner").Length() != 0 || testid(d, "card-resend-stale").Length() != 0 {
		t.Fatalf("after passed checks the dashboard still asks for attention: %q", testid(d, "attention-banner").Text())
	}
}

// TestNothingIsStaleWhenChecksAreOff: with REVERIFY_INTERVAL=0 an old
// verification is not called stale, and no banner shows for it.
func TestNothingIsStaleWhenChecksAreOff(t *testing.T) {
	e := newEnv(t, withReverifyInterval(0))
	b, _, orgID := e.admin()
	if _, err := e.creds.Save(context.Background(), app.Connection{OrgID: orgID, VerifiedAt: time.Now().Add(-1000 * time.Hour),
		Config: app.ResendConfig{APIKey: app.NewSecret("re_" + strings.Repeat("c3", 10)), FromEmail: "desk@example.com"}}); err != nil {
		t.Fatal(err)
	}
	d := b.get("/dashboard/integrations").doc(t)
	if testid(d, "card-resend-stale").Length() != 0 || testid(d, "attention-banner").Length() != 0 {
		t.Fatal("with the checks off an old verification is called stale")
	}
}

// TestCardChangesRefreshTheBanner: an htmx answer that changes a card
// (Test connection passed or refused, Disconnect, Refresh) carries the
// attention region as it stands, out of band, so the banner above the
// cards follows without a reload.
func TestCardChangesRefreshTheBanner(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, withReverifyInterval(time.Hour))
	b, token, orgID := e.admin()
	store := func(key string, verified time.Time) {
		t.Helper()
		if _, err := e.creds.Save(ctx, app.Connection{OrgID: orgID, VerifiedAt: verified,
			Config: app.ResendConfig{APIKey: app.NewSecret(key), FromEmail: "desk@example.com"}}); err != nil {
			t.Fatal(err)
		}
	}
	region := func(what string, res response) (named bool) {
		t.Helper()
		d := res.doc(t)
		r := d.Find(`#attention[hx-swap-oob="true"]`)
		if r.Length() != 1 {
			t.Fatalf("%s: %d out-of-band attention regions in the answer, want one:\n%s", what, r.Length(), res.body)
		}
		return r.Find(`[data-testid="attention-resend"]`).Length() == 1
	}

	// Stale, then a passed test: the banner empties.
	store("re_"+strings.Repeat("d4", 10), time.Now().Add(-3*time.Hour))
	if !region("refresh while stale", b.get("/dashboard/integrations", "HX-Request", "true")) {
		t.Fatal("the Refresh answer does not name the stale connection")
	}
	res := b.hx(http.MethodPost, "/api/integrations/resend/verify", nil, token)
	if res.StatusCode != http.StatusOK || region("passed test", res) {
		t.Fatalf("after a passed test the banner still names Resend (%d)", res.StatusCode)
	}

	// A key the provider refuses: the refused test's answer names it.
	key := "re_invalid_" + strings.Repeat("e5", 8)
	store(key, time.Now())
	res = b.hx(http.MethodPost, "/api/integrations/resend/verify", nil, token)
	if !region("refused test", res) {
		t.Fatalf("the refused test's answer does not name Resend in the banner")
	}
	if strings.Contains(res.body, key) {
		t.Fatal("the answer reveals the key")
	}

	// Disconnected: nothing needs attention any more.
	if res = b.hx(http.MethodDelete, "/api/integrations/resend", nil, token); res.StatusCode != http.StatusOK || region("disconnect", res) {
		t.Fatalf("after Disconnect the banner still names Resend (%d)", res.StatusCode)
	}
	// A full page carries the region once, in place (not out of band).
	d := b.get("/dashboard/integrations").doc(t)
	if d.Find("#attention").Length() != 1 || d.Find(`[hx-swap-oob]#attention`).Length() != 0 {
		t.Fatal("the page's attention region is missing, doubled or out of band")
	}
}
