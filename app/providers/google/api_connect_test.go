package google_test

import (
	"context"
	"net/url"
	"testing"

	"byoc/app"
	"byoc/app/sandbox"
)

// A flow started by an API client is bound to the user, not to a browser
// session: the same admin finishes it in any session; nobody else can.
func TestAPIConnectFlow(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	begin := func(p app.Principal) string {
		t.Helper()
		authURL, err := h.svc.APIConnectURL(ctx, p)
		if h.note(err) != nil {
			t.Fatalf("APIConnectURL: %v", err)
		}
		loc, err := sandbox.GoogleConsent(ctx, nil, authURL, sandbox.GoogleConsentChoice{Email: "api-owner@example.com"})
		if err != nil {
			t.Fatalf("consent: %v", err)
		}
		return loc.RawQuery
	}

	t.Run("another user of the org is refused", func(t *testing.T) {
		other := h.addUser(h.org, app.RoleAdmin)
		q := parseQuery(t, begin(h.admin))
		_, err := h.callback(other, "any-session", q)
		wantCode(t, err, app.EForbidden, "another user")
		h.assertNothingStored()
	})
	t.Run("the same admin in any browser session", func(t *testing.T) {
		q := parseQuery(t, begin(h.admin))
		email, err := h.callback(h.admin, "a-session-the-flow-never-saw", q)
		if err != nil || email != "api-owner@example.com" {
			t.Fatalf("Callback = %q, %v", email, err)
		}
		if h.stored().Email != "api-owner@example.com" {
			t.Fatal("the connected account was not stored")
		}
	})
	t.Run("members cannot start it", func(t *testing.T) {
		_, err := h.svc.APIConnectURL(ctx, h.addUser(h.org, app.RoleMember))
		wantCode(t, h.note(err), app.EForbidden, "")
	})
}

func parseQuery(t *testing.T, raw string) url.Values {
	t.Helper()
	q, err := url.ParseQuery(raw)
	if err != nil {
		t.Fatal(err)
	}
	return q
}
