package google_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"byoc/app"
	"byoc/app/providers/google"
)

const reconnect = "Reconnect needed: Google refused the stored authorization (invalid_grant). Connect Google Calendar again."

func TestTokenReturnsStoredTokenWhileValid(t *testing.T) {
	h := newHarness(t)
	cfg := h.connect("owner@example.com")
	tok, err := h.svc.Token(context.Background(), h.org)
	if h.note(err) != nil || tok.AccessToken != cfg.AccessToken.Reveal() {
		t.Fatalf("Token = %v, %v; want the stored access token", tok, err)
	}
	if n := h.g.Refreshes("owner@example.com"); n != 0 {
		t.Fatalf("%d refreshes for a valid token", n)
	}
}

func TestExpiredTokenRefreshedOnceUnderConcurrency(t *testing.T) {
	h := newHarness(t)
	const email = "owner@example.com"
	old := h.connect(email)
	h.clock.Advance(2 * time.Hour) // the stored access token has expired

	const callers = 20
	var wg sync.WaitGroup
	start := make(chan struct{})
	toks := make([]*oauth2.Token, callers)
	errs := make([]error, callers)
	for i := range callers {
		wg.Go(func() {
			<-start
			toks[i], errs[i] = h.svc.Token(context.Background(), h.org)
		})
	}
	close(start)
	wg.Wait()

	for i, err := range errs {
		if h.note(err) != nil {
			t.Fatalf("caller %d: %v", i, err)
		}
	}
	if n := h.g.Refreshes(email); n != 1 {
		t.Fatalf("%d refreshes under %d concurrent callers, want exactly 1", n, callers)
	}
	fresh := toks[0].AccessToken
	if fresh == old.AccessToken.Reveal() {
		t.Fatal("the expired token was returned")
	}
	for i, tok := range toks {
		if tok.AccessToken != fresh {
			t.Fatalf("caller %d got another token than caller 0", i)
		}
	}

	// Persisted, encrypted, through the credential service.
	stored := h.stored()
	if stored.AccessToken.Reveal() != fresh || stored.RefreshToken.Reveal() != old.RefreshToken.Reveal() || stored.Email != email {
		t.Fatalf("stored after the refresh: access token persisted %v, refresh token kept %v",
			stored.AccessToken.Reveal() == fresh, stored.RefreshToken.Reveal() == old.RefreshToken.Reveal())
	}
	if d := stored.Expiry.Sub(h.clock.Now()); d < 59*time.Minute || d > time.Hour {
		t.Errorf("new expiry in %v, want about an hour", d)
	}
	st := h.status()
	if !st.Connected || st.NeedsAttention || st.LastVerified == nil || !st.LastVerified.Equal(h.clock.Now().Truncate(time.Microsecond)) {
		t.Errorf("status after the refresh %+v; want verified now", st)
	}

	// A new service (another instance) uses the persisted token as it is.
	other := h.newService(h.oauthConfig())
	tok, err := other.Token(context.Background(), h.org)
	if h.note(err) != nil || tok.AccessToken != fresh || h.g.Refreshes(email) != 1 {
		t.Fatalf("another instance: %v, %v, %d refreshes", tok, err, h.g.Refreshes(email))
	}
}

func TestAccessTokenRejectedEarlyIsRefreshed(t *testing.T) {
	h := newHarness(t)
	const email = "owner@example.com"
	old := h.connect(email)
	h.g.ExpireAccessTokens(email) // Google drops it before its announced expiry

	if _, err := h.svc.FreeBusy(context.Background(), h.org, time.Now(), time.Now().Add(time.Hour)); h.note(err) != nil {
		t.Fatal(err)
	}
	if n := h.g.Refreshes(email); n != 1 {
		t.Fatalf("%d refreshes, want 1", n)
	}
	if h.stored().AccessToken.Reveal() == old.AccessToken.Reveal() {
		t.Fatal("the refreshed token was not persisted")
	}
}

func TestInvalidGrantNeedsReconnect(t *testing.T) {
	h := newHarness(t)
	const email = "owner@example.com"
	h.connect(email)
	h.g.RevokeGrants(email) // the user removed the app's access at Google
	h.clock.Advance(2 * time.Hour)

	_, err := h.svc.Token(context.Background(), h.org)
	wantCode(t, h.note(err), app.EVerificationFailed, reconnect)

	st := h.status()
	if !st.Connected || !st.NeedsAttention || st.VerificationError != reconnect {
		t.Fatalf("status %+v; want connected, needing attention, with the reconnect message", st)
	}

	_, err = h.svc.FreeBusy(context.Background(), h.org, time.Now(), time.Now().Add(time.Hour))
	wantCode(t, h.note(err), app.EVerificationFailed, reconnect)
	_, _, err = h.svc.Book(context.Background(), h.org, booking(time.Now()))
	wantCode(t, h.note(err), app.EVerificationFailed, reconnect)
}

func TestVerify(t *testing.T) {
	ctx := context.Background()

	t.Run("success records the check", func(t *testing.T) {
		h := newHarness(t)
		h.connect("owner@example.com")
		h.clock.Advance(5 * time.Minute)
		res, err := h.svc.Verify(ctx, h.admin)
		if h.note(err) != nil {
			t.Fatal(err)
		}
		now := h.clock.Now().Truncate(time.Microsecond)
		if !res.VerifiedAt.Equal(now) || res.Email != "owner@example.com" || res.Detail == "" {
			t.Fatalf("result %+v", res)
		}
		st := h.status()
		if st.NeedsAttention || st.LastVerified == nil || !st.LastVerified.Equal(now) {
			t.Fatalf("status %+v", st)
		}
		if e := h.lastAudit(); e.Action != google.ActionVerify || e.Outcome != app.OutcomeSuccess {
			t.Fatalf("audit %+v", e)
		}
	})

	t.Run("401 with the authorization revoked is recorded", func(t *testing.T) {
		h := newHarness(t)
		h.connect("owner@example.com")
		h.g.RevokeGrants("owner@example.com") // access token now answered 401, refresh invalid_grant
		_, err := h.svc.Verify(ctx, h.admin)
		wantCode(t, h.note(err), app.EVerificationFailed, reconnect)
		st := h.status()
		if !st.NeedsAttention || st.VerificationError != reconnect {
			t.Fatalf("status %+v", st)
		}
		if e := h.lastAudit(); e.Action != google.ActionVerify || e.Outcome != app.OutcomeFailure || e.Detail != reconnect {
			t.Fatalf("audit %+v", e)
		}
	})

	t.Run("401 that a refresh cures passes", func(t *testing.T) {
		h := newHarness(t)
		h.connect("owner@example.com")
		h.g.ExpireAccessTokens("owner@example.com")
		if _, err := h.svc.Verify(ctx, h.admin); h.note(err) != nil {
			t.Fatal(err)
		}
		if h.status().NeedsAttention || h.g.Refreshes("owner@example.com") != 1 {
			t.Fatalf("status %+v, %d refreshes", h.status(), h.g.Refreshes("owner@example.com"))
		}
	})

	t.Run("Google unreachable records nothing", func(t *testing.T) {
		h := newHarness(t)
		h.connect("owner@example.com")
		before := h.status()
		dead := httptest.NewServer(nil)
		dead.Close()
		cfg := h.oauthConfig()
		cfg.CalendarBaseURL = dead.URL + "/calendar/v3"
		h.clock.Advance(time.Minute)
		_, err := h.newService(cfg).Verify(ctx, h.admin)
		wantCode(t, h.note(err), app.EProviderUnavailable, "could not be reached")
		after := h.status()
		if after.NeedsAttention || !after.LastVerified.Equal(*before.LastVerified) {
			t.Fatalf("status changed: %+v -> %+v", before, after)
		}
	})

	t.Run("refusals", func(t *testing.T) {
		h := newHarness(t)
		_, err := h.svc.Verify(ctx, h.admin)
		wantCode(t, h.note(err), app.ENotConfigured, "No Google Calendar credentials")
		h.connect("owner@example.com")
		_, err = h.svc.Verify(ctx, h.addUser(h.org, app.RoleMember))
		wantCode(t, h.note(err), app.EForbidden, "Only an admin")
	})
}

func TestDisconnect(t *testing.T) {
	ctx := context.Background()

	t.Run("revokes at Google, then deletes", func(t *testing.T) {
		h := newHarness(t)
		cfg := h.connect("owner@example.com")
		if err := h.svc.Disconnect(ctx, h.admin); h.note(err) != nil {
			t.Fatal(err)
		}
		if !h.g.IsRevoked(cfg.RefreshToken.Reveal()) || h.g.RevokeRequests() != 1 {
			t.Fatalf("revoked %v after %d revocation requests", h.g.IsRevoked(cfg.RefreshToken.Reveal()), h.g.RevokeRequests())
		}
		h.assertNothingStored()
		if e := h.lastAudit(); e.Action != google.ActionDisconnect || e.Outcome != app.OutcomeSuccess || e.Detail != "Google Calendar disconnected." {
			t.Fatalf("audit %+v", e)
		}
		err := h.svc.Disconnect(ctx, h.admin)
		wantCode(t, h.note(err), app.ENotConfigured, "No Google Calendar credentials")
	})

	t.Run("a failed revocation does not block it", func(t *testing.T) {
		h := newHarness(t)
		cfg := h.connect("owner@example.com")
		h.g.FailRevocations(true)
		if err := h.svc.Disconnect(ctx, h.admin); h.note(err) != nil {
			t.Fatal(err)
		}
		if h.g.RevokeRequests() != 1 || h.g.IsRevoked(cfg.RefreshToken.Reveal()) {
			t.Fatalf("%d revocation requests", h.g.RevokeRequests())
		}
		h.assertNothingStored()
		if !strings.Contains(h.logs.String(), "google token revocation failed") {
			t.Fatalf("the failed revocation was not logged:\n%s", h.logs.String())
		}
		if e := h.lastAudit(); e.Outcome != app.OutcomeSuccess || !strings.Contains(e.Detail, "did not confirm the revocation") {
			t.Fatalf("audit %+v", e)
		}
	})

	t.Run("also when Google cannot be reached", func(t *testing.T) {
		h := newHarness(t)
		h.connect("owner@example.com")
		dead := httptest.NewServer(nil)
		dead.Close()
		cfg := h.oauthConfig()
		cfg.RevokeURL = dead.URL + "/revoke"
		if err := h.newService(cfg).Disconnect(ctx, h.admin); h.note(err) != nil {
			t.Fatal(err)
		}
		h.assertNothingStored()
	})

	t.Run("an undecryptable row is still deleted", func(t *testing.T) {
		h := newHarness(t)
		h.connect("owner@example.com")
		if _, err := h.db.Pool.Exec(ctx, `update org_credentials set encrypted_config = '\x01'::bytea where org_id = $1`, h.org); err != nil {
			t.Fatal(err)
		}
		h.creds.Invalidate(h.org, string(app.GoogleCalendar))
		if err := h.svc.Disconnect(ctx, h.admin); h.note(err) != nil {
			t.Fatal(err)
		}
		h.assertNothingStored()
	})

	t.Run("only an admin", func(t *testing.T) {
		h := newHarness(t)
		h.connect("owner@example.com")
		err := h.svc.Disconnect(ctx, h.addUser(h.org, app.RoleMember))
		wantCode(t, h.note(err), app.EForbidden, "Only an admin")
		h.stored()
		if h.g.RevokeRequests() != 0 {
			t.Fatal("a refused disconnect revoked the grant")
		}
	})
}
