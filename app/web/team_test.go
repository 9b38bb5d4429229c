package web_test

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"

	"byoc/app"
	"byoc/app/apptest"
	"byoc/app/mail"
)

// apiUser is an account as an API client holds it.
type apiUser struct {
	auth, orgID, userID, email string
}

// apiAdmin signs a new org up through the API.
func (e *env) apiAdmin() apiUser {
	e.t.Helper()
	email := strings.ToLower(uniqueEmail())
	res := e.do(request(http.MethodPost, "/api/auth/signup", map[string]string{
		"orgName": "Team Clinic", "email": email, "password": password}))
	if res.StatusCode != http.StatusCreated {
		e.t.Fatalf("API signup: %d\n%s", res.StatusCode, res.body)
	}
	d := envelopeData(e.t, res)
	return apiUser{auth: "Bearer " + d["token"].(string), orgID: d["orgId"].(string), userID: d["userId"].(string), email: email}
}

// call sends a JSON request with u's bearer token.
func (e *env) call(u apiUser, method, target string, body any) response {
	e.t.Helper()
	return e.do(request(method, target, body, "Authorization", u.auth))
}

// mailTo returns the last message the outbox holds for to.
func (e *env) mailTo(to string) (mail.Message, bool) {
	e.t.Helper()
	e.sys.Accounts.WaitForMail()
	for _, m := range e.sys.Outbox.Messages() {
		if m.To == to {
			return m, true
		}
	}
	return mail.Message{}, false
}

var linkRE = regexp.MustCompile(`https://byoc\.example\.com(/(?:invite|reset)/([A-Za-z0-9_-]+))`)

// linkIn returns the path and token of the first invitation or reset link
// in text.
func linkIn(t *testing.T, text string) (path, token string) {
	t.Helper()
	m := linkRE.FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("no link in %q", text)
	}
	return m[1], m[2]
}

// join invites a new address to admin's org with role through the API and
// accepts it through the API.
func (e *env) join(admin apiUser, role string) apiUser {
	e.t.Helper()
	email := strings.ToLower(uniqueEmail())
	res := e.call(admin, http.MethodPost, "/api/team/invites", map[string]string{"email": email, "role": role})
	if res.StatusCode != http.StatusCreated {
		e.t.Fatalf("invite: %d\n%s", res.StatusCode, res.body)
	}
	_, token := linkIn(e.t, envelopeData(e.t, res)["inviteUrl"].(string))
	res = e.do(request(http.MethodPost, "/api/auth/accept-invite", map[string]string{"token": token, "password": password}))
	if res.StatusCode != http.StatusCreated {
		e.t.Fatalf("accept: %d\n%s", res.StatusCode, res.body)
	}
	d := envelopeData(e.t, res)
	return apiUser{auth: "Bearer " + d["token"].(string), orgID: d["orgId"].(string), userID: d["userId"].(string), email: email}
}

func TestInviteThroughTheAPI(t *testing.T) {
	e := newEnv(t)
	admin := e.apiAdmin()
	email := strings.ToLower(uniqueEmail())

	res := e.call(admin, http.MethodPost, "/api/team/invites", map[string]string{"email": strings.ToUpper(email), "role": "member"})
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("invite: %d\n%s", res.StatusCode, res.body)
	}
	d := envelopeData(t, res)
	if d["inviteId"] == "" || d["expiresAt"] == nil || d["emailed"] != true || d["email"] != email {
		t.Fatalf("invite answer %v", d)
	}
	path, token := linkIn(t, d["inviteUrl"].(string))

	m, ok := e.mailTo(email)
	if !ok {
		t.Fatalf("no invitation in the outbox for %s", email)
	}
	if m.Subject != "You're invited to join Team Clinic on BYOC" || !strings.Contains(m.Text, d["inviteUrl"].(string)) {
		t.Fatalf("invitation mail: %q\n%s", m.Subject, m.Text)
	}
	apptest.AssertNoSecret(t, "the invitation mail", m.Text+m.Subject, admin.auth[len("Bearer "):], password,
		e.setup.cfg.SessionSecret.Reveal(), e.setup.cfg.JWTSecret.Reveal(), e.setup.cfg.EncryptionKey.Reveal())

	t.Run("listed as pending, never with its link", func(t *testing.T) {
		res := e.call(admin, http.MethodGet, "/api/team", nil)
		d := envelopeData(t, res)
		invites := d["invites"].([]any)
		if len(invites) != 1 || invites[0].(map[string]any)["email"] != email {
			t.Fatalf("invites %v", invites)
		}
		if strings.Contains(res.body, token) {
			t.Fatal("the team listing holds the invitation's token")
		}
		var stored string
		if err := e.db.Pool.QueryRow(t.Context(), `select token_hash from invites where lower(email) = $1`, email).Scan(&stored); err != nil {
			t.Fatal(err)
		}
		if stored == token || strings.Contains(stored, token) {
			t.Fatal("the token is stored as it is, not hashed")
		}
	})

	t.Run("the page of the link", func(t *testing.T) {
		res := e.browser().get(path)
		if res.StatusCode != http.StatusOK || testid(res.doc(t), "join-form").Length() != 1 || !strings.Contains(res.body, email) {
			t.Fatalf("invitation page: %d\n%s", res.StatusCode, res.body)
		}
		res = e.do(request(http.MethodGet, path, nil, "Accept", "application/json"))
		if d := envelopeData(t, res); d["email"] != email || d["orgName"] != "Team Clinic" || d["role"] != "member" {
			t.Fatalf("invitation as JSON: %s", res.body)
		}
		apptest.AssertNoSecret(t, "the log", e.log.String(), token)
	})

	t.Run("a weak password is refused and the link keeps working", func(t *testing.T) {
		res := e.do(request(http.MethodPost, "/api/auth/accept-invite", map[string]string{"token": token, "password": "short"}))
		if res.StatusCode != http.StatusBadRequest || envelopeError(t, res)["fields"].(map[string]any)["password"] == nil {
			t.Fatalf("weak password: %d\n%s", res.StatusCode, res.body)
		}
	})

	var joined map[string]any
	t.Run("accepting answers like signup", func(t *testing.T) {
		res := e.do(request(http.MethodPost, "/api/auth/accept-invite", map[string]string{"token": token, "password": password}))
		if res.StatusCode != http.StatusCreated {
			t.Fatalf("accept: %d\n%s", res.StatusCode, res.body)
		}
		joined = envelopeData(t, res)
		if joined["orgId"] != admin.orgID || joined["userId"] == "" || joined["token"] == "" || joined["expiresAt"] == nil {
			t.Fatalf("accept answer %v", joined)
		}
	})

	t.Run("single use", func(t *testing.T) {
		res := e.do(request(http.MethodPost, "/api/auth/accept-invite", map[string]string{"token": token, "password": password}))
		if res.StatusCode != http.StatusNotFound || envelopeError(t, res)["code"] != "not_found" {
			t.Fatalf("second accept: %d\n%s", res.StatusCode, res.body)
		}
		page := e.browser().get(path)
		if page.StatusCode != http.StatusNotFound || testid(page.doc(t), "link-problem").Length() != 1 {
			t.Fatalf("used link's page: %d\n%s", page.StatusCode, page.body)
		}
	})

	t.Run("the new member reads the team", func(t *testing.T) {
		member := apiUser{auth: "Bearer " + joined["token"].(string)}
		res := e.call(member, http.MethodGet, "/api/team", nil)
		members := envelopeData(t, res)["members"].([]any)
		if len(members) != 2 {
			t.Fatalf("members %v", members)
		}
		for _, m := range members {
			m := m.(map[string]any)
			want := map[string]string{admin.email: "admin", email: "member"}[m["email"].(string)]
			if m["role"] != want || m["joined"] == nil || m["userId"] == "" {
				t.Fatalf("member %v", m)
			}
		}
	})

	t.Run("an address with an account is refused", func(t *testing.T) {
		for _, addr := range []string{email, admin.email, e.apiAdmin().email} {
			res := e.call(admin, http.MethodPost, "/api/team/invites", map[string]string{"email": addr, "role": "member"})
			if res.StatusCode != http.StatusConflict || envelopeError(t, res)["code"] != "email_taken" {
				t.Fatalf("invite %s: %d\n%s", addr, res.StatusCode, res.body)
			}
		}
	})

	t.Run("an address that got an account meanwhile cannot accept", func(t *testing.T) {
		addr := strings.ToLower(uniqueEmail())
		res := e.call(admin, http.MethodPost, "/api/team/invites", map[string]string{"email": addr, "role": "admin"})
		_, tok := linkIn(t, envelopeData(t, res)["inviteUrl"].(string))
		if res := e.do(request(http.MethodPost, "/api/auth/signup", map[string]string{
			"orgName": "Elsewhere", "email": addr, "password": password})); res.StatusCode != http.StatusCreated {
			t.Fatalf("signup: %d", res.StatusCode)
		}
		res = e.do(request(http.MethodPost, "/api/auth/accept-invite", map[string]string{"token": tok, "password": password}))
		if res.StatusCode != http.StatusConflict || envelopeError(t, res)["code"] != "email_taken" {
			t.Fatalf("accept: %d\n%s", res.StatusCode, res.body)
		}
	})

	t.Run("bad input", func(t *testing.T) {
		for _, body := range []map[string]string{{"email": "not an address", "role": "member"}, {"email": "x@example.com", "role": "owner"}, {}} {
			res := e.call(admin, http.MethodPost, "/api/team/invites", body)
			if res.StatusCode != http.StatusBadRequest || envelopeError(t, res)["code"] != "validation_failed" {
				t.Fatalf("invite %v: %d\n%s", body, res.StatusCode, res.body)
			}
		}
		for _, tok := range []string{"", "short", strings.Repeat("A", 43), token + "x"} {
			res := e.do(request(http.MethodPost, "/api/auth/accept-invite", map[string]string{"token": tok, "password": password}))
			if res.StatusCode != http.StatusNotFound {
				t.Fatalf("accept with token %q: %d\n%s", tok, res.StatusCode, res.body)
			}
		}
	})
}

func TestRevokeInvite(t *testing.T) {
	e := newEnv(t)
	admin := e.apiAdmin()
	res := e.call(admin, http.MethodPost, "/api/team/invites", map[string]string{"email": "revoked@example.com", "role": "member"})
	d := envelopeData(t, res)
	_, token := linkIn(t, d["inviteUrl"].(string))
	id := d["inviteId"].(string)

	res = e.call(admin, http.MethodDelete, "/api/team/invites/"+id, nil)
	if res.StatusCode != http.StatusOK || envelopeData(t, res)["revoked"] != true {
		t.Fatalf("revoke: %d\n%s", res.StatusCode, res.body)
	}
	res = e.do(request(http.MethodPost, "/api/auth/accept-invite", map[string]string{"token": token, "password": password}))
	if res.StatusCode != http.StatusNotFound {
		t.Fatalf("accepting a revoked invitation: %d\n%s", res.StatusCode, res.body)
	}
	for _, bad := range []string{id, "not-a-uuid"} {
		res = e.call(admin, http.MethodDelete, "/api/team/invites/"+bad, nil)
		if res.StatusCode != http.StatusNotFound || envelopeError(t, res)["code"] != "not_found" {
			t.Fatalf("revoke %s again: %d\n%s", bad, res.StatusCode, res.body)
		}
	}
}

func TestMemberRolesAndRemoval(t *testing.T) {
	e := newEnv(t)
	admin := e.apiAdmin()
	member := e.join(admin, "member")

	t.Run("the last admin is neither demoted nor removed", func(t *testing.T) {
		for _, r := range []response{
			e.call(admin, http.MethodPatch, "/api/team/members/"+admin.userID, map[string]string{"role": "member"}),
			e.call(admin, http.MethodDelete, "/api/team/members/"+admin.userID, nil),
		} {
			if r.StatusCode != http.StatusConflict || envelopeError(t, r)["code"] != "last_admin" {
				t.Fatalf("%d\n%s", r.StatusCode, r.body)
			}
		}
	})
	t.Run("promote, then demote the first admin", func(t *testing.T) {
		res := e.call(admin, http.MethodPatch, "/api/team/members/"+member.userID, map[string]string{"role": "admin"})
		if res.StatusCode != http.StatusOK || envelopeData(t, res)["role"] != "admin" {
			t.Fatalf("promote: %d\n%s", res.StatusCode, res.body)
		}
		res = e.call(member, http.MethodPatch, "/api/team/members/"+admin.userID, map[string]string{"role": "member"})
		if res.StatusCode != http.StatusOK || envelopeData(t, res)["role"] != "member" {
			t.Fatalf("demote: %d\n%s", res.StatusCode, res.body)
		}
		// The role is read on every request: the demoted admin's token
		// may no longer change the team.
		res = e.call(admin, http.MethodPost, "/api/team/invites", map[string]string{"email": "x@example.com", "role": "member"})
		if res.StatusCode != http.StatusForbidden || envelopeError(t, res)["code"] != "forbidden" {
			t.Fatalf("demoted admin invites: %d\n%s", res.StatusCode, res.body)
		}
	})
	t.Run("bad role and unknown member", func(t *testing.T) {
		res := e.call(member, http.MethodPatch, "/api/team/members/"+admin.userID, map[string]string{"role": "owner"})
		if res.StatusCode != http.StatusBadRequest {
			t.Fatalf("bad role: %d\n%s", res.StatusCode, res.body)
		}
		for _, id := range []string{"00000000-0000-4000-8000-000000000000", "nope"} {
			res = e.call(member, http.MethodPatch, "/api/team/members/"+id, map[string]string{"role": "admin"})
			if res.StatusCode != http.StatusNotFound {
				t.Fatalf("unknown member %s: %d\n%s", id, res.StatusCode, res.body)
			}
		}
	})
	t.Run("removal ends the member's token at once", func(t *testing.T) {
		if res := e.call(admin, http.MethodGet, "/api/integrations/status", nil); res.StatusCode != http.StatusOK {
			t.Fatalf("before removal: %d", res.StatusCode)
		}
		res := e.call(member, http.MethodDelete, "/api/team/members/"+admin.userID, nil)
		if res.StatusCode != http.StatusOK || envelopeData(t, res)["removed"] != true {
			t.Fatalf("remove: %d\n%s", res.StatusCode, res.body)
		}
		res = e.call(admin, http.MethodGet, "/api/integrations/status", nil)
		if res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("removed member's token: %d, want 401", res.StatusCode)
		}
		res = e.do(request(http.MethodPost, "/api/auth/token", map[string]string{"email": admin.email, "password": password}))
		if res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("removed member signs in: %d\n%s", res.StatusCode, res.body)
		}
	})
}

// TestConcurrentDemotionsThroughTheAPI: two admins demoting each other at
// the same moment leave one admin.
func TestConcurrentDemotionsThroughTheAPI(t *testing.T) {
	e := newEnv(t)
	for range 5 {
		a := e.apiAdmin()
		b := e.join(a, "admin")
		var wg sync.WaitGroup
		codes := make([]int, 2)
		for i, pair := range [][2]apiUser{{a, b}, {b, a}} {
			wg.Go(func() {
				codes[i] = e.call(pair[0], http.MethodPatch, "/api/team/members/"+pair[1].userID, map[string]string{"role": "member"}).StatusCode
			})
		}
		wg.Wait()
		d := envelopeData(t, e.call(a, http.MethodGet, "/api/team", nil))
		if d == nil {
			d = envelopeData(t, e.call(b, http.MethodGet, "/api/team", nil))
		}
		admins := 0
		for _, m := range d["members"].([]any) {
			if m.(map[string]any)["role"] == "admin" {
				admins++
			}
		}
		if admins != 1 || codes[0]+codes[1] != http.StatusOK+http.StatusForbidden {
			t.Fatalf("statuses %v, %d admins; want one 200, one 403 and one admin", codes, admins)
		}
	}
}

// TestTeamRoleMatrix: every mutating route of the team and of the
// integrations, tried by an admin, a member, a removed member and an admin
// of another org. Members and removed members change nothing; another
// org's admin never reaches this org's invitations or members.
func TestTeamRoleMatrix(t *testing.T) {
	e := newEnv(t, func(s *envSetup) { s.cfg.Limits.AttemptsPerIP, s.cfg.Limits.ProviderCallsPerIP = 1000, 1000 })
	type route struct {
		name, method string
		target       func(fx fixture) string
		body         any
		// want is the status per actor.
		admin, member, removed, other int
	}
	routes := []route{
		{"invite", http.MethodPost, func(fixture) string { return "/api/team/invites" },
			map[string]string{"email": "matrix@example.com", "role": "member"}, 201, 403, 401, 201},
		{"revoke invite", http.MethodDelete, func(fx fixture) string { return "/api/team/invites/" + fx.inviteID }, nil, 200, 403, 401, 404},
		{"set role", http.MethodPatch, func(fx fixture) string { return "/api/team/members/" + fx.target.userID },
			map[string]string{"role": "admin"}, 200, 403, 401, 404},
		{"remove member", http.MethodDelete, func(fx fixture) string { return "/api/team/members/" + fx.target.userID }, nil, 200, 403, 401, 404},
		{"save credentials", http.MethodPost, func(fixture) string { return "/api/integrations/resend" },
			map[string]string{"apiKey": resendKey()}, 200, 403, 401, 200},
		{"verify", http.MethodPost, func(fixture) string { return "/api/integrations/twilio/verify" }, nil, 404, 403, 401, 404},
		{"disconnect", http.MethodDelete, func(fixture) string { return "/api/integrations/elevenlabs" }, nil, 200, 403, 401, 404},
		{"webhook signing", http.MethodPost, func(fixture) string { return "/api/integrations/vapi/webhook-signing" },
			map[string]any{"hmacOnly": true}, 404, 403, 401, 404},
		{"change password", http.MethodPost, func(fixture) string { return "/api/account/password" },
			map[string]string{"currentPassword": password, "newPassword": "another long passphrase"}, 200, 200, 401, 200},
	}
	for _, r := range routes {
		t.Run(r.name, func(t *testing.T) {
			// The others first: they change nothing, so the admin's
			// change is tried on the same org last.
			fx := e.fixture()
			for _, actor := range []string{"other", "member", "removed", "admin"} {
				want := map[string]int{"admin": r.admin, "member": r.member, "removed": r.removed, "other": r.other}[actor]
				u := map[string]apiUser{"admin": fx.admin, "member": fx.member, "removed": fx.removed, "other": fx.other}[actor]
				res := e.call(u, r.method, r.target(fx), r.body)
				if res.StatusCode != want {
					t.Fatalf("%s: %d, want %d\n%s", actor, res.StatusCode, want, res.body)
				}
				if actor != "admin" && r.name != "change password" {
					fx.unchanged(t)
				}
			}
		})
	}
}

// fixture is an org with an admin, a member, a member to act on, a removed
// member, a pending invitation and Resend and ElevenLabs connected, plus
// the admin of another org.
type fixture struct {
	e                                     *env
	admin, member, target, removed, other apiUser
	inviteID                              string
	before                                string
}

func (e *env) fixture() fixture {
	e.t.Helper()
	fx := fixture{e: e, admin: e.apiAdmin()}
	fx.member, fx.target, fx.removed = e.join(fx.admin, "member"), e.join(fx.admin, "member"), e.join(fx.admin, "member")
	if res := e.call(fx.admin, http.MethodDelete, "/api/team/members/"+fx.removed.userID, nil); res.StatusCode != http.StatusOK {
		e.t.Fatalf("remove: %d", res.StatusCode)
	}
	res := e.call(fx.admin, http.MethodPost, "/api/team/invites", map[string]string{"email": strings.ToLower(uniqueEmail()), "role": "member"})
	fx.inviteID = envelopeData(e.t, res)["inviteId"].(string)
	for _, p := range []struct{ path, key string }{{"/api/integrations/resend", resendKey()}, {"/api/integrations/elevenlabs", elevenKey()}} {
		if res := e.call(fx.admin, http.MethodPost, p.path, map[string]string{"apiKey": p.key}); res.StatusCode != http.StatusOK {
			e.t.Fatalf("save %s: %d\n%s", p.path, res.StatusCode, res.body)
		}
	}
	fx.other = e.apiAdmin()
	fx.before = fx.state()
	return fx
}

// state is the org's team, invitations and credentials as the superuser
// reads them.
func (fx fixture) state() string {
	var s string
	err := fx.e.db.Pool.QueryRow(fx.e.t.Context(), `select
		(select string_agg(user_id::text || role, ',' order by user_id) from org_members where org_id = $1) || '|' ||
		(select coalesce(string_agg(id::text || role, ',' order by id), '') from invites where org_id = $1) || '|' ||
		(select coalesce(string_agg(provider || encode(encrypted_config, 'hex') || webhook_hmac_only::text, ',' order by provider), '')
			from org_credentials where org_id = $1)`, fx.admin.orgID).Scan(&s)
	if err != nil {
		fx.e.t.Fatal(err)
	}
	return s
}

func (fx fixture) unchanged(t *testing.T) {
	t.Helper()
	if got := fx.state(); got != fx.before {
		t.Fatalf("the org changed:\nbefore %s\nafter  %s", fx.before, got)
	}
}

func TestTeamPagesAndFragments(t *testing.T) {
	e := newEnv(t)
	b, csrf, _ := e.admin()

	res := b.get("/settings/team")
	d := res.doc(t)
	if res.StatusCode != http.StatusOK || testid(d, "team").Length() != 1 || testid(d, "invite-form").Length() != 1 {
		t.Fatalf("team page: %d\n%s", res.StatusCode, res.body)
	}

	email := strings.ToLower(uniqueEmail())
	res = b.hx(http.MethodPost, "/api/team/invites", url.Values{"email": {email}, "role": {"member"}}, csrf)
	d = res.doc(t)
	if res.Header.Get("X-Byoc-Status") != "201" || testid(d, "invited").Length() != 1 || testid(d, "invite-"+email).Length() != 1 {
		t.Fatalf("htmx invite: %s\n%s", res.Header.Get("X-Byoc-Status"), res.body)
	}
	link := testid(d, "invite-url").Text()
	if _, ok := e.mailTo(email); !ok || !strings.HasPrefix(link, "https://byoc.example.com/invite/") {
		t.Fatalf("invitation link %q, mailed %v", link, ok)
	}

	res = b.hx(http.MethodPost, "/api/team/invites", url.Values{"email": {"nope"}, "role": {"member"}}, csrf)
	if res.Header.Get("X-Byoc-Status") != "400" || testid(res.doc(t), "invite-email-error").Length() != 1 {
		t.Fatalf("htmx refused invite: %s\n%s", res.Header.Get("X-Byoc-Status"), res.body)
	}

	// The invitee joins through the page and lands on the dashboard.
	path, _ := linkIn(t, link)
	invitee := e.browser()
	tok := invitee.csrf(path)
	res = invitee.do(request(http.MethodPost, path, url.Values{"_csrf": {tok}, "password": {"short"}}))
	if res.StatusCode != http.StatusBadRequest || testid(res.doc(t), "password-error").Length() != 1 {
		t.Fatalf("weak password on the page: %d\n%s", res.StatusCode, res.body)
	}
	res = invitee.do(request(http.MethodPost, path, url.Values{"_csrf": {tok}, "password": {password}}))
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/dashboard/integrations" {
		t.Fatalf("join on the page: %d %q\n%s", res.StatusCode, res.Header.Get("Location"), res.body)
	}
	dash := invitee.get("/dashboard/integrations")
	dd := dash.doc(t)
	if testid(dd, "member-note").Length() != 1 || dd.Find(`[hx-post], [hx-delete]`).Length() != 0 {
		t.Fatalf("the member's dashboard is not read-only:\n%s", dash.body)
	}
	page := invitee.get("/settings/team")
	pd := page.doc(t)
	if testid(pd, "team-member-note").Length() != 1 || testid(pd, "invite-form").Length() != 0 || pd.Find(`[hx-patch], [hx-delete]`).Length() != 0 {
		t.Fatalf("the member's team page offers changes:\n%s", page.body)
	}

	// The admin's team fragment after a refused change says why.
	var adminID string
	if err := e.db.Pool.QueryRow(t.Context(), `select m.user_id::text from org_members m join users u on u.id = m.user_id
		where m.role = 'admin' and m.org_id = (select org_id from org_members m2 join users u2 on u2.id = m2.user_id where u2.email = $1)`, email).Scan(&adminID); err != nil {
		t.Fatal(err)
	}
	res = b.hx(http.MethodPatch, "/api/team/members/"+adminID, url.Values{"role": {"member"}}, csrf)
	if res.Header.Get("X-Byoc-Status") != "409" || !strings.Contains(testid(res.doc(t), "team-result").Text(), "at least one admin") {
		t.Fatalf("htmx last admin: %s\n%s", res.Header.Get("X-Byoc-Status"), res.body)
	}
	// Without the CSRF token a cookie request changes nothing.
	res = b.do(request(http.MethodDelete, "/api/team/members/"+adminID, nil))
	if res.StatusCode != http.StatusForbidden {
		t.Fatalf("no CSRF token: %d", res.StatusCode)
	}
}

func TestPasswordReset(t *testing.T) {
	e := newEnv(t)
	admin := e.apiAdmin()
	b := e.browser()
	tok := b.csrf("/login")
	if res := b.do(request(http.MethodPost, "/login", url.Values{"_csrf": {tok}, "email": {admin.email}, "password": {password}})); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("login: %d", res.StatusCode)
	}

	for _, addr := range []string{strings.ToUpper(admin.email), "nobody-" + apptest.RandomHex(4) + "@example.com"} {
		res := e.do(request(http.MethodPost, "/api/auth/password-reset", map[string]string{"email": addr}))
		if res.StatusCode != http.StatusAccepted || envelopeData(t, res)["accepted"] != true {
			t.Fatalf("reset %s: %d\n%s", addr, res.StatusCode, res.body)
		}
	}
	e.sys.Accounts.WaitForMail()
	if len(e.sys.Outbox.Messages()) != 1 {
		t.Fatalf("outbox holds %d messages, want the one for the account", len(e.sys.Outbox.Messages()))
	}
	m, ok := e.mailTo(admin.email)
	if !ok || m.Subject != "Reset your BYOC password" {
		t.Fatalf("reset mail: %+v", m)
	}
	path, token := linkIn(t, m.Text)

	res := e.do(request(http.MethodPost, "/api/auth/password-reset", map[string]string{"email": "not an address"}))
	if res.StatusCode != http.StatusBadRequest {
		t.Fatalf("bad address: %d", res.StatusCode)
	}

	r := e.browser()
	csrf := r.csrf(path)
	res = r.do(request(http.MethodPost, path, url.Values{"_csrf": {csrf}, "password": {"password"}}))
	if res.StatusCode != http.StatusBadRequest || testid(res.doc(t), "password-error").Length() != 1 {
		t.Fatalf("weak password: %d\n%s", res.StatusCode, res.body)
	}
	res = r.do(request(http.MethodPost, path, url.Values{"_csrf": {csrf}, "password": {"a brand new passphrase"}}))
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/dashboard/integrations" {
		t.Fatalf("reset: %d %q\n%s", res.StatusCode, res.Header.Get("Location"), res.body)
	}
	if res := r.get("/dashboard/integrations"); res.StatusCode != http.StatusOK {
		t.Fatalf("the resetting browser is not signed in: %d", res.StatusCode)
	}
	if res := e.call(admin, http.MethodGet, "/api/integrations/status", nil); res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("token from before the reset: %d, want 401", res.StatusCode)
	}
	if res := b.get("/dashboard/integrations"); res.StatusCode != http.StatusFound {
		t.Fatalf("cookie from before the reset: %d, want a redirect to login", res.StatusCode)
	}
	if res := r.get(path); res.StatusCode != http.StatusNotFound {
		t.Fatalf("used link: %d", res.StatusCode)
	}
	res = e.do(request(http.MethodPost, "/api/auth/token", map[string]string{"email": admin.email, "password": "a brand new passphrase"}))
	if res.StatusCode != http.StatusOK {
		t.Fatalf("sign in with the new password: %d", res.StatusCode)
	}
	apptest.AssertNoSecret(t, "the log", e.log.String(), token, "a brand new passphrase")
	apptest.AssertNoSecret(t, "the answers", e.bodies.String(), "a brand new passphrase")
}

func TestPasswordResetLimits(t *testing.T) {
	e := newEnv(t, func(s *envSetup) { s.cfg.Limits.AttemptsPerIP, s.cfg.Limits.AttemptsPerEmail = 4, 2 })
	admin := e.apiAdmin()
	for i := range 4 {
		res := e.do(request(http.MethodPost, "/api/auth/password-reset", map[string]string{"email": admin.email}))
		if res.StatusCode != http.StatusAccepted {
			t.Fatalf("request %d: %d", i, res.StatusCode)
		}
	}
	e.sys.Accounts.WaitForMail()
	if n := len(e.sys.Outbox.Messages()); n != 2 {
		t.Fatalf("%d mails sent, want 2 (the per-e-mail limit)", n)
	}
	res := e.do(request(http.MethodPost, "/api/auth/password-reset", map[string]string{"email": admin.email}))
	if res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") == "" {
		t.Fatalf("over the per-address limit: %d", res.StatusCode)
	}
}

func TestChangePassword(t *testing.T) {
	e := newEnv(t)
	admin := e.apiAdmin()
	other := apiUser{auth: "Bearer " + envelopeData(t, e.do(request(http.MethodPost, "/api/auth/token",
		map[string]string{"email": admin.email, "password": password})))["token"].(string)}

	res := e.call(admin, http.MethodPost, "/api/account/password", map[string]string{"currentPassword": "wrong one here", "newPassword": "another long passphrase"})
	if res.StatusCode != http.StatusBadRequest || envelopeError(t, res)["fields"].(map[string]any)["currentPassword"] == nil {
		t.Fatalf("wrong current password: %d\n%s", res.StatusCode, res.body)
	}
	res = e.call(admin, http.MethodPost, "/api/account/password", map[string]string{"currentPassword": password, "newPassword": strings.Split(admin.email, "@")[0] + " secret"})
	if res.StatusCode != http.StatusBadRequest || envelopeError(t, res)["fields"].(map[string]any)["newPassword"] == nil {
		t.Fatalf("common new password: %d\n%s", res.StatusCode, res.body)
	}
	res = e.call(admin, http.MethodPost, "/api/account/password", map[string]string{"currentPassword": password, "newPassword": "another long passphrase"})
	if res.StatusCode != http.StatusOK {
		t.Fatalf("change: %d\n%s", res.StatusCode, res.body)
	}
	fresh := apiUser{auth: "Bearer " + envelopeData(t, res)["token"].(string)}
	for name, u := range map[string]apiUser{"the old token": admin, "another session's token": other} {
		if res := e.call(u, http.MethodGet, "/api/team", nil); res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("%s: %d, want 401", name, res.StatusCode)
		}
	}
	if res := e.call(fresh, http.MethodGet, "/api/team", nil); res.StatusCode != http.StatusOK {
		t.Fatalf("the new token: %d", res.StatusCode)
	}

	// The browser form: a new session cookie, sent to the account page.
	b := e.browser()
	tok := b.csrf("/login")
	b.do(request(http.MethodPost, "/login", url.Values{"_csrf": {tok}, "email": {admin.email}, "password": {"another long passphrase"}}))
	csrf := b.csrf("/settings/account")
	res = b.hx(http.MethodPost, "/api/account/password", url.Values{"currentPassword": {"nope nope nope"}, "newPassword": {"x"}}, csrf)
	if res.Header.Get("X-Byoc-Status") != "400" || testid(res.doc(t), "password-form").Length() != 1 {
		t.Fatalf("htmx refusal: %s\n%s", res.Header.Get("X-Byoc-Status"), res.body)
	}
	res = b.hx(http.MethodPost, "/api/account/password", url.Values{"currentPassword": {"another long passphrase"}, "newPassword": {"yet another passphrase"}}, csrf)
	if res.Header.Get("HX-Redirect") != "/settings/account" {
		t.Fatalf("htmx change: %v\n%s", res.Header, res.body)
	}
	if res := b.get("/settings/account"); res.StatusCode != http.StatusOK {
		t.Fatalf("the browser that changed it is signed out: %d", res.StatusCode)
	}
}

func TestOutboxIsDevelopmentOnly(t *testing.T) {
	e := newEnv(t)
	admin := e.apiAdmin()
	e.call(admin, http.MethodPost, "/api/auth/password-reset", map[string]string{"email": admin.email})
	e.sys.Accounts.WaitForMail()
	res := e.browser().get("/dev/outbox")
	if res.StatusCode != http.StatusOK || testid(res.doc(t), "outbox-link").Length() != 1 {
		t.Fatalf("outbox: %d\n%s", res.StatusCode, res.body)
	}

	p := newEnv(t, production)
	if p.sys.Outbox != nil {
		t.Fatal("production keeps an outbox")
	}
	if res := p.browser().get("/dev/outbox"); res.StatusCode != http.StatusNotFound {
		t.Fatalf("production outbox: %d", res.StatusCode)
	}
	padmin := p.apiAdmin()
	res = p.call(padmin, http.MethodPost, "/api/team/invites", map[string]string{"email": "x@example.com", "role": "member"})
	d := envelopeData(t, res)
	if res.StatusCode != http.StatusCreated || d["emailed"] != false || !strings.Contains(d["mailProblem"].(string), "not set up to send e-mail") ||
		!strings.HasPrefix(d["inviteUrl"].(string), "https://byoc.example.com/invite/") {
		t.Fatalf("production invite without mail: %d\n%s", res.StatusCode, res.body)
	}
	res = p.do(request(http.MethodPost, "/api/auth/password-reset", map[string]string{"email": padmin.email}))
	if res.StatusCode != http.StatusServiceUnavailable || !strings.Contains(envelopeError(t, res)["message"].(string), "not set up to send e-mail") {
		t.Fatalf("production reset without mail: %d\n%s", res.StatusCode, res.body)
	}
}

// TestPlatformMailThroughResend: with the platform's key, invitations and
// reset links go through Resend's send contract (the stand-in), from the
// platform's sender, with the platform's key, never an org's.
func TestPlatformMailThroughResend(t *testing.T) {
	platformKey := resendKey("platform")
	e := newEnv(t, func(s *envSetup) {
		s.cfg.Mail.ResendAPIKey, s.cfg.Mail.From = app.NewSecret(platformKey), "BYOC <noreply@sandbox.example.com>"
	})
	if e.sys.Outbox != nil {
		t.Fatal("an outbox with a mail key configured")
	}
	if res := e.browser().get("/dev/outbox"); res.StatusCode != http.StatusNotFound {
		t.Fatalf("outbox with a mail key: %d", res.StatusCode)
	}
	admin := e.apiAdmin()
	orgKey := resendKey()
	if res := e.call(admin, http.MethodPost, "/api/integrations/resend", map[string]string{"apiKey": orgKey}); res.StatusCode != http.StatusOK {
		t.Fatalf("org's resend: %d", res.StatusCode)
	}
	invitee := strings.ToLower(uniqueEmail())
	res := e.call(admin, http.MethodPost, "/api/team/invites", map[string]string{"email": invitee, "role": "admin"})
	d := envelopeData(t, res)
	if d["emailed"] != true {
		t.Fatalf("invite: %s", res.body)
	}
	e.do(request(http.MethodPost, "/api/auth/password-reset", map[string]string{"email": admin.email}))
	e.sys.Accounts.WaitForMail()

	sent := e.sb.Resend.Sent()
	if len(sent) != 2 {
		t.Fatalf("Resend got %d messages, want 2", len(sent))
	}
	wants := []struct{ to, subject, link string }{
		{invitee, "You're invited to join Team Clinic on BYOC", d["inviteUrl"].(string)},
		{admin.email, "Reset your BYOC password", "https://byoc.example.com/reset/"},
	}
	for i, w := range wants {
		m := sent[i]
		if len(m.To) != 1 || m.To[0] != w.to || m.Subject != w.subject || !strings.Contains(m.Text, w.link) ||
			m.From != "BYOC <noreply@sandbox.example.com>" || m.Key != platformKey {
			t.Fatalf("message %d: to %v subject %q from %q key ok %v\n%s", i, m.To, m.Subject, m.From, m.Key == platformKey, m.Text)
		}
		apptest.AssertNoFragment(t, "a platform mail", m.Subject+m.Text+m.HTML, platformKey, orgKey, password,
			e.setup.cfg.SessionSecret.Reveal(), e.setup.cfg.JWTSecret.Reveal(), e.setup.cfg.EncryptionKey.Reveal())
	}
	apptest.AssertNoSecret(t, "the log", e.log.String(), platformKey, orgKey)

	t.Run("a sender Resend refuses: the invitation stands with its link", func(t *testing.T) {
		bad := newEnv(t, func(s *envSetup) {
			s.cfg.Mail.ResendAPIKey, s.cfg.Mail.From = app.NewSecret(platformKey), "noreply@unverified.example.org"
		})
		admin := bad.apiAdmin()
		res := bad.call(admin, http.MethodPost, "/api/team/invites", map[string]string{"email": "x@example.com", "role": "member"})
		d := envelopeData(t, res)
		if res.StatusCode != http.StatusCreated || d["emailed"] != false || !strings.Contains(d["mailProblem"].(string), "Resend refused") {
			t.Fatalf("invite with a refused sender: %d\n%s", res.StatusCode, res.body)
		}
		apptest.AssertNoSecret(t, "the answer", res.body, platformKey)
	})
}

// TestAccountRoutesInEveryFormat: the pages, their htmx fragments and
// their JSON answers, and the answers of links that do not work.
func TestAccountRoutesInEveryFormat(t *testing.T) {
	e := newEnv(t)
	b, csrf, _ := e.admin()

	if res := b.get("/settings/team", "HX-Request", "true"); testid(res.doc(t), "team").Length() != 1 || strings.Contains(res.body, "<html") {
		t.Fatalf("team fragment:\n%s", res.body)
	}
	res := b.get("/settings/account")
	if res.StatusCode != http.StatusOK || testid(res.doc(t), "password-form").Length() != 1 || testid(res.doc(t), "sign-out-everywhere").Length() != 1 {
		t.Fatalf("account page: %d\n%s", res.StatusCode, res.body)
	}
	if res := b.api(http.MethodGet, "/settings/account", nil, csrf); res.StatusCode != http.StatusOK {
		t.Fatalf("account page for htmx: %d", res.StatusCode)
	}
	if res := e.browser().get("/settings/account"); res.StatusCode != http.StatusFound || !strings.HasPrefix(res.Header.Get("Location"), "/login") {
		t.Fatalf("account page signed out: %d %q", res.StatusCode, res.Header.Get("Location"))
	}
	if res := e.do(request(http.MethodGet, "/api/team", nil)); res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("team API signed out: %d", res.StatusCode)
	}

	anon := e.browser()
	page := anon.get("/password-reset")
	if page.StatusCode != http.StatusOK || testid(page.doc(t), "forgot-form").Length() != 1 {
		t.Fatalf("forgot page: %d\n%s", page.StatusCode, page.body)
	}
	tok := anon.csrf("/password-reset")
	res = anon.do(request(http.MethodPost, "/password-reset", url.Values{"_csrf": {tok}, "email": {"someone@example.com"}}))
	if res.StatusCode != http.StatusAccepted || testid(res.doc(t), "reset-requested").Length() != 1 {
		t.Fatalf("forgot form: %d\n%s", res.StatusCode, res.body)
	}
	res = anon.hx(http.MethodPost, "/password-reset", url.Values{"email": {"nope"}}, tok)
	if res.Header.Get("X-Byoc-Status") != "400" || testid(res.doc(t), "email-error").Length() != 1 {
		t.Fatalf("forgot form for htmx: %s\n%s", res.Header.Get("X-Byoc-Status"), res.body)
	}

	bad := "/reset/" + strings.Repeat("A", 43)
	if res := anon.get(bad); res.StatusCode != http.StatusNotFound || testid(res.doc(t), "link-problem").Length() != 1 {
		t.Fatalf("unknown reset link page: %d\n%s", res.StatusCode, res.body)
	}
	if res := e.do(request(http.MethodGet, bad, nil, "Accept", "application/json")); res.StatusCode != http.StatusNotFound || envelopeError(t, res)["code"] != "not_found" {
		t.Fatalf("unknown reset link as JSON: %d\n%s", res.StatusCode, res.body)
	}
	res = anon.do(request(http.MethodPost, bad, url.Values{"_csrf": {tok}, "password": {password}}))
	if res.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown reset link posted: %d\n%s", res.StatusCode, res.body)
	}
	if res := anon.get("/invite/nonsense"); res.StatusCode != http.StatusNotFound || testid(res.doc(t), "link-problem").Length() != 1 {
		t.Fatalf("unknown invitation page: %d\n%s", res.StatusCode, res.body)
	}
	res = anon.do(request(http.MethodPost, "/invite/nonsense", url.Values{"_csrf": {tok}, "password": {password}}))
	if res.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown invitation posted: %d\n%s", res.StatusCode, res.body)
	}
}

// TestRemovalEndsSessionsOnEveryInstance: a member removed through one
// instance is refused at once by another, and the change is audited.
func TestRemovalEndsSessionsOnEveryInstance(t *testing.T) {
	e := newEnv(t)
	other := e.instance()
	admin := e.apiAdmin()
	member := e.join(admin, "member")
	if res := other.call(member, http.MethodGet, "/api/integrations/status", nil); res.StatusCode != http.StatusOK {
		t.Fatalf("before: %d", res.StatusCode)
	}
	if res := e.call(admin, http.MethodPatch, "/api/team/members/"+member.userID, map[string]string{"role": "admin"}); res.StatusCode != http.StatusOK {
		t.Fatalf("promote: %d", res.StatusCode)
	}
	if res := other.call(member, http.MethodPost, "/api/team/invites", map[string]string{"email": "x@example.com", "role": "member"}); res.StatusCode != http.StatusCreated {
		t.Fatalf("the promoted member invites on the other instance: %d\n%s", res.StatusCode, res.body)
	}
	if res := e.call(admin, http.MethodDelete, "/api/team/members/"+member.userID, nil); res.StatusCode != http.StatusOK {
		t.Fatalf("remove: %d", res.StatusCode)
	}
	if res := other.call(member, http.MethodGet, "/api/integrations/status", nil); res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("the removed member on the other instance: %d, want 401", res.StatusCode)
	}

	rows, err := e.db.Pool.Query(t.Context(), `select action || ' ' || coalesce(actor_user_id::text, '') || ' ' || coalesce(detail, '')
		from audit_log where org_id = $1 order by id`, admin.orgID)
	if err != nil {
		t.Fatal(err)
	}
	var log []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		log = append(log, line)
	}
	want := []string{
		"team.invite " + admin.userID + " invited " + member.email + " as member",
		"team.join " + member.userID + " " + member.email + " joined as member",
		"team.role_change " + admin.userID + " made " + member.email + " admin",
		"team.invite " + member.userID + " invited x@example.com as member",
		"team.remove " + admin.userID + " removed " + member.email,
	}
	if strings.Join(log, "\n") != strings.Join(want, "\n") {
		t.Fatalf("audit log:\n%s\nwant:\n%s", strings.Join(log, "\n"), strings.Join(want, "\n"))
	}
}
