package web_test

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"byoc/app/apptest"
	"byoc/app/webhooks"
)

// auditEntries returns the entries and next cursor of an audit answer.
func auditEntries(t *testing.T, res response) ([]map[string]any, string) {
	t.Helper()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("audit: %d\n%s", res.StatusCode, res.body)
	}
	d := envelopeData(t, res)
	var out []map[string]any
	for _, e := range d["entries"].([]any) {
		out = append(out, e.(map[string]any))
	}
	next, _ := d["nextCursor"].(string)
	return out, next
}

func TestActivityRoleMatrix(t *testing.T) {
	e := newEnv(t, func(s *envSetup) { s.cfg.Limits.AttemptsPerIP, s.cfg.Limits.ProviderCallsPerIP = 1000, 1000 })
	fx := e.fixture()
	for _, target := range []string{"/api/audit", "/api/webhooks/deliveries"} {
		t.Run(target, func(t *testing.T) {
			for _, c := range []struct {
				actor string
				u     apiUser
				want  int
				code  string
			}{
				{"admin", fx.admin, 200, ""},
				{"member", fx.member, 403, "forbidden"},
				{"removed member", fx.removed, 401, "unauthorized"},
				{"other org's admin", fx.other, 200, ""},
				{"anonymous", apiUser{}, 401, "unauthorized"},
			} {
				res := e.do(request(http.MethodGet, target, nil, "Authorization", c.u.auth))
				if c.u.auth == "" {
					res = e.do(request(http.MethodGet, target, nil))
				}
				if res.StatusCode != c.want {
					t.Fatalf("%s: %d, want %d\n%s", c.actor, res.StatusCode, c.want, res.body)
				}
				if c.code != "" && envelopeError(t, res)["code"] != c.code {
					t.Fatalf("%s: %s, want %s", c.actor, res.body, c.code)
				}
				if c.actor == "other org's admin" && (strings.Contains(res.body, fx.admin.email) ||
					strings.Contains(res.body, fx.member.email)) {
					t.Fatalf("the other org sees this org's activity:\n%s", res.body)
				}
			}
		})
	}
}

func TestAuditAPI(t *testing.T) {
	e := newEnv(t, func(s *envSetup) { s.cfg.Limits.AttemptsPerIP, s.cfg.Limits.ProviderCallsPerIP = 1000, 1000 })
	fx := e.fixture()
	key := resendKey()
	if res := e.call(fx.admin, http.MethodPost, "/api/integrations/resend", map[string]string{"apiKey": key}); res.StatusCode != http.StatusOK {
		t.Fatalf("save: %d", res.StatusCode)
	}
	if res := e.call(fx.admin, http.MethodPost, "/api/integrations/resend", map[string]string{"apiKey": "re_short"}); res.StatusCode < 400 {
		t.Fatalf("bad save: %d", res.StatusCode)
	}
	get := func(q url.Values) response { return e.call(fx.admin, http.MethodGet, "/api/audit?"+q.Encode(), nil) }

	all, next := auditEntries(t, get(url.Values{"limit": {"100"}}))
	if next != "" || len(all) < 10 {
		t.Fatalf("%d entries, next %q", len(all), next)
	}
	t.Run("newest first, who, what, which provider, outcome, reason", func(t *testing.T) {
		first := all[0]
		if first["action"] != "credentials.save" || first["provider"] != "resend" || first["outcome"] != "failure" ||
			first["actorEmail"] != fx.admin.email || first["description"] != "Saved or connected" || first["detail"] == "" {
			t.Fatalf("newest entry %v", first)
		}
		if all[1]["outcome"] != "success" || all[1]["provider"] != "resend" {
			t.Fatalf("second entry %v", all[1])
		}
		var prev time.Time
		for i, en := range all {
			at, err := time.Parse(time.RFC3339Nano, en["at"].(string))
			if err != nil {
				t.Fatal(err)
			}
			if i > 0 && at.After(prev) {
				t.Fatalf("entry %d is newer than the one before it", i)
			}
			prev = at
		}
		var removed bool
		for _, en := range all {
			removed = removed || en["action"] == "team.remove"
		}
		if !removed {
			t.Fatal("the removal of a member is not in the log")
		}
		apptest.AssertNoSecret(t, "the audit answer", get(url.Values{"limit": {"100"}}).body, key, password,
			fx.admin.auth[len("Bearer "):], e.setup.cfg.EncryptionKey.Reveal())
	})

	t.Run("filters", func(t *testing.T) {
		for _, c := range []struct {
			q     url.Values
			check func(map[string]any) bool
			min   int
		}{
			{url.Values{"provider": {"resend"}}, func(m map[string]any) bool { return m["provider"] == "resend" }, 3},
			{url.Values{"action": {"team.join"}}, func(m map[string]any) bool { return m["action"] == "team.join" }, 3},
			{url.Values{"provider": {"elevenlabs"}, "action": {"credentials.save"}}, func(m map[string]any) bool {
				return m["provider"] == "elevenlabs" && m["action"] == "credentials.save"
			}, 1},
		} {
			got, _ := auditEntries(t, get(c.q))
			if len(got) < c.min {
				t.Errorf("%v: %d entries, want at least %d", c.q, len(got), c.min)
			}
			for _, en := range got {
				if !c.check(en) {
					t.Errorf("%v: entry %v does not match", c.q, en)
				}
			}
		}
		got, _ := auditEntries(t, get(url.Values{"provider": {"twilio"}}))
		if len(got) != 0 {
			t.Errorf("twilio: %v", got)
		}
	})

	t.Run("pages follow each other to the end", func(t *testing.T) {
		var ids []float64
		q := url.Values{"limit": {"3"}}
		for range 100 {
			page, next := auditEntries(t, get(q))
			if len(page) > 3 {
				t.Fatalf("%d entries on a page of 3", len(page))
			}
			for _, en := range page {
				ids = append(ids, en["id"].(float64))
			}
			if next == "" {
				break
			}
			q.Set("cursor", next)
		}
		if len(ids) != len(all) {
			t.Fatalf("paged %d entries, listed %d", len(ids), len(all))
		}
		for i, en := range all {
			if ids[i] != en["id"].(float64) {
				t.Fatalf("entry %d: paged id %v, listed %v", i, ids[i], en["id"])
			}
		}
	})

	t.Run("bad input is a 400 naming the field", func(t *testing.T) {
		_, cursor := auditEntries(t, get(url.Values{"limit": {"1"}}))
		_, resendCursor := auditEntries(t, get(url.Values{"limit": {"1"}, "provider": {"resend"}}))
		for range 2 {
			if res := e.call(fx.other, http.MethodPost, "/api/integrations/resend", map[string]string{"apiKey": resendKey()}); res.StatusCode != http.StatusOK {
				t.Fatalf("other org's save: %d", res.StatusCode)
			}
		}
		otherCursor := ""
		if _, c := auditEntries(t, e.call(fx.other, http.MethodGet, "/api/audit?limit=1", nil)); c != "" {
			otherCursor = c
		} else {
			t.Fatal("the other org has a single entry")
		}
		tampered := []byte(cursor)
		tampered[3] ^= 1
		for _, c := range []struct {
			name  string
			q     url.Values
			field string
		}{
			{"unknown provider", url.Values{"provider": {"stripe"}}, "provider"},
			{"unknown action", url.Values{"action": {"credentials.steal"}}, "action"},
			{"limit 0", url.Values{"limit": {"0"}}, "limit"},
			{"limit 101", url.Values{"limit": {"101"}}, "limit"},
			{"limit not a number", url.Values{"limit": {"ten"}}, "limit"},
			{"garbage cursor", url.Values{"cursor": {"garbage"}}, "cursor"},
			{"cursor not base64", url.Values{"cursor": {strings.Repeat("*", len(cursor))}}, "cursor"},
			{"tampered cursor", url.Values{"cursor": {string(tampered)}}, "cursor"},
			{"cursor of other filters", url.Values{"cursor": {resendCursor}}, "cursor"},
			{"cursor of another org", url.Values{"cursor": {otherCursor}}, "cursor"},
		} {
			res := get(c.q)
			if res.StatusCode != http.StatusBadRequest {
				t.Errorf("%s: %d, want 400\n%s", c.name, res.StatusCode, res.body)
				continue
			}
			er := envelopeError(t, res)
			if er["code"] != "validation_failed" || er["fields"].(map[string]any)[c.field] == nil {
				t.Errorf("%s: %v", c.name, er)
			}
		}
		// The deliveries refuse a cursor of the audit log.
		res := e.call(fx.admin, http.MethodGet, "/api/webhooks/deliveries?cursor="+url.QueryEscape(cursor), nil)
		if res.StatusCode != http.StatusBadRequest || envelopeError(t, res)["fields"].(map[string]any)["cursor"] == nil {
			t.Errorf("audit cursor on deliveries: %d %s", res.StatusCode, res.body)
		}
	})
}

func TestActivityPage(t *testing.T) {
	e := newEnv(t)
	b, token, _ := e.admin()
	if res := b.api(http.MethodPost, "/api/integrations/resend", map[string]string{"apiKey": resendKey()}, token); res.StatusCode != http.StatusOK {
		t.Fatalf("save: %d", res.StatusCode)
	}
	if res := b.api(http.MethodPost, "/api/integrations/elevenlabs", map[string]string{"apiKey": elevenKey()}, token); res.StatusCode != http.StatusOK {
		t.Fatalf("save: %d", res.StatusCode)
	}

	res := b.get("/settings/activity")
	d := res.doc(t)
	if res.StatusCode != http.StatusOK || testid(d, "audit-row").Length() != 2 || testid(d, "deliveries").Length() != 1 ||
		testid(d, "nav-activity").Length() != 1 {
		t.Fatalf("activity page: %d\n%s", res.StatusCode, res.body)
	}
	if got := testid(d, "audit-what").First().Text(); got != "Saved or connected" {
		t.Fatalf("what: %q", got)
	}
	if d.Find(`[data-testid="audit-filters"][hx-push-url="true"]`).Length() != 1 {
		t.Fatal("the filters do not keep the address")
	}

	// A filter through htmx answers the audit fragment alone.
	res = b.get("/settings/activity?provider=elevenlabs", "HX-Request", "true")
	d = res.doc(t)
	if res.StatusCode != http.StatusOK || strings.Contains(res.body, "<html") || d.Find("header").Length() != 0 || testid(d, "audit-row").Length() != 1 ||
		testid(d, "audit-provider-cell").Text() != "ElevenLabs" {
		t.Fatalf("filtered fragment: %d\n%s", res.StatusCode, res.body)
	}
	// The shared address shows the same page in full, its filter chosen.
	res = b.get("/settings/activity?provider=elevenlabs")
	d = res.doc(t)
	if testid(d, "audit-row").Length() != 1 || d.Find(`#audit-provider option[value="elevenlabs"][selected]`).Length() != 1 {
		t.Fatalf("shared address:\n%s", res.body)
	}
	// Pages of one entry link to the next.
	res = b.get("/settings/activity?limit=1")
	next, ok := testid(res.doc(t), "audit-older").Attr("href")
	if !ok || !strings.Contains(next, "cursor=") {
		t.Fatalf("no link to older entries:\n%s", res.body)
	}
	if res := b.get("/settings/activity?cursor=forged"); res.StatusCode != http.StatusBadRequest {
		t.Fatalf("forged cursor on the page: %d", res.StatusCode)
	}

	t.Run("members are refused", func(t *testing.T) {
		mb := e.browser()
		mb.signup(password)
		var userID string
		// A member of an org: demote the signed-up admin after adding a second admin.
		if err := e.db.Pool.QueryRow(t.Context(), `select m.user_id::text from org_members m order by m.created_at desc limit 1`).Scan(&userID); err != nil {
			t.Fatal(err)
		}
		if _, err := e.db.Pool.Exec(t.Context(), `update org_members set role = 'member' where user_id = $1`, userID); err != nil {
			t.Fatal(err)
		}
		res := mb.get("/settings/activity")
		if res.StatusCode != http.StatusForbidden {
			t.Fatalf("member: %d", res.StatusCode)
		}
		if testid(mb.get("/dashboard/integrations").doc(t), "nav-activity").Length() != 0 {
			t.Fatal("a member is offered the activity page")
		}
	})
}

func TestDeliveriesAPI(t *testing.T) {
	e := newEnv(t)
	secret := "whsec-" + apptest.RandomHex(16)
	b, token, key, assistant := connectVapiKey(t, e, secret)
	other := e.instance()
	signed := func(env *env, body string, at time.Time) response {
		t.Helper()
		h, err := e.sb.Vapi.EventHeaders(key, assistant, []byte(body), at)
		if err != nil {
			t.Fatal(err)
		}
		var headers []string
		for k := range h {
			headers = append(headers, k, h.Get(k))
		}
		return env.do(request(http.MethodPost, "/api/webhooks/vapi", body, headers...))
	}
	get := func(q string) map[string]any {
		t.Helper()
		res := b.api(http.MethodGet, "/api/webhooks/deliveries"+q, nil, token)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("deliveries: %d\n%s", res.StatusCode, res.body)
		}
		return envelopeData(t, res)
	}

	if d := get(""); len(d["deliveries"].([]any)) != 0 || len(d["refusals"].(map[string]any)["counts"].([]any)) != 0 {
		t.Fatalf("before any delivery: %v", d)
	}
	card := testid(b.get("/dashboard/integrations").doc(t), "card-vapi-last-delivery")
	if !strings.Contains(card.Text(), "No webhook delivery yet") {
		t.Fatalf("card before any delivery: %q", card.Text())
	}

	first := vapiEvent(assistant, "status-update")
	if res := signed(e, first, time.Now()); res.StatusCode != http.StatusOK {
		t.Fatalf("first: %d %s", res.StatusCode, res.body)
	}
	// The same delivery through another instance reaches the database: a
	// duplicate of the first.
	if res := signed(other, first, time.Now()); res.StatusCode != http.StatusOK || res.json(t)["duplicate"] != true {
		t.Fatalf("copy: %d %s", res.StatusCode, res.body)
	}
	second := vapiEvent(assistant, "end-of-call-report")
	if res := signed(e, second, time.Now()); res.StatusCode != http.StatusOK {
		t.Fatalf("second: %d %s", res.StatusCode, res.body)
	}
	// Refused: twice a bad signature, once a stale timestamp, once an
	// unknown assistant (no org: not counted).
	for range 2 {
		res := e.do(request(http.MethodPost, "/api/webhooks/vapi", vapiEvent(assistant, "status-update"),
			webhooks.HeaderSignature, "sha256=00", webhooks.HeaderTimestamp, strconv.FormatInt(time.Now().Unix(), 10)))
		if res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("forged: %d", res.StatusCode)
		}
	}
	if res := signed(e, vapiEvent(assistant, "status-update"), time.Now().Add(-time.Hour)); res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("stale: %d", res.StatusCode)
	}
	if err := e.sys.Webhooks.FlushRefusals(t.Context()); err != nil {
		t.Fatal(err)
	}

	d := get("")
	ds := d["deliveries"].([]any)
	if len(ds) != 2 {
		t.Fatalf("deliveries %v", ds)
	}
	newest, oldest := ds[0].(map[string]any), ds[1].(map[string]any)
	if newest["type"] != "end-of-call-report" || newest["assistantId"] != assistant || newest["assistantRole"] != "inbound" ||
		newest["outcome"] != "handled" || newest["duplicates"] != float64(0) || newest["callId"] == "" {
		t.Fatalf("newest %v", newest)
	}
	if oldest["type"] != "status-update" || oldest["duplicates"] != float64(1) {
		t.Fatalf("oldest %v", oldest)
	}
	counts := map[string]float64{}
	for _, c := range d["refusals"].(map[string]any)["counts"].([]any) {
		m := c.(map[string]any)
		if m["assistantId"] != assistant || m["assistantRole"] != "inbound" {
			t.Fatalf("refusal %v", m)
		}
		counts[m["reason"].(string)] = m["count"].(float64)
	}
	if counts["invalid_signature"] != 2 || counts["stale_timestamp"] != 1 || len(counts) != 2 {
		t.Fatalf("refusal counts %v", counts)
	}

	t.Run("pages", func(t *testing.T) {
		p1 := get("?limit=1")
		next, _ := p1["nextCursor"].(string)
		if len(p1["deliveries"].([]any)) != 1 || next == "" {
			t.Fatalf("first page %v", p1)
		}
		p2 := get("?limit=1&cursor=" + url.QueryEscape(next))
		if got := p2["deliveries"].([]any); len(got) != 1 || got[0].(map[string]any)["type"] != "status-update" || p2["nextCursor"] != nil {
			t.Fatalf("second page %v", p2)
		}
		// Another last character changes either the cursor's data or the
		// bits past its end: both are refused (one cursor, one spelling).
		last := "A"
		if strings.HasSuffix(next, last) {
			last = "B"
		}
		first := "A"
		if strings.HasPrefix(next, first) {
			first = "B"
		}
		for _, q := range []string{"?limit=0", "?limit=500", "?cursor=AAAA",
			"?cursor=" + next[:len(next)-1] + last, "?cursor=" + first + next[1:]} {
			res := b.api(http.MethodGet, "/api/webhooks/deliveries"+q, nil, token)
			if res.StatusCode != http.StatusBadRequest || envelopeError(t, res)["code"] != "validation_failed" {
				t.Errorf("%s: %d %s", q, res.StatusCode, res.body)
			}
		}
	})

	t.Run("shown on the Vapi card and the activity page", func(t *testing.T) {
		card := testid(b.get("/dashboard/integrations").doc(t), "card-vapi-last-delivery")
		if !strings.Contains(card.Text(), "Last delivery") || !strings.Contains(card.Text(), "just now") {
			t.Fatalf("card: %q", card.Text())
		}
		pd := b.get("/settings/activity").doc(t)
		if testid(pd, "delivery-row").Length() != 2 || testid(pd, "refusal").Length() != 2 ||
			!strings.Contains(testid(pd, "refusals").Text(), "bad signature") {
			t.Fatalf("activity page deliveries:\n%s", testid(pd, "deliveries").Text())
		}
	})
	apptest.AssertNoSecret(t, "the deliveries", b.api(http.MethodGet, "/api/webhooks/deliveries", nil, token).body, secret, key)
}

// TestSecretRotationAudited: a Vapi save that replaces the webhook secret
// writes a rotation entry besides the save's; saving the same secret again
// does not. Neither holds the secret.
func TestSecretRotationAudited(t *testing.T) {
	e := newEnv(t)
	first := "whsec-" + apptest.RandomHex(16)
	b, token, key, _ := connectVapiKey(t, e, first)
	rotations := func() []any {
		t.Helper()
		res := b.api(http.MethodGet, "/api/audit?action=credentials.rotate_secret", nil, token)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("audit: %d %s", res.StatusCode, res.body)
		}
		return envelopeData(t, res)["entries"].([]any)
	}
	if got := rotations(); len(got) != 0 {
		t.Fatalf("the first save is not a rotation: %v", got)
	}
	save := func(secret string) {
		t.Helper()
		res := b.api(http.MethodPost, "/api/integrations/vapi", map[string]string{"apiKey": key, "webhookSecret": secret}, token)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("save: %d %s", res.StatusCode, res.body)
		}
	}
	save(first)
	if got := rotations(); len(got) != 0 {
		t.Fatalf("saving the same secret is not a rotation: %v", got)
	}
	second := "whsec-" + apptest.RandomHex(16)
	save(second)
	got := rotations()
	if len(got) != 1 {
		t.Fatalf("rotations %v, want 1", got)
	}
	en := got[0].(map[string]any)
	if en["provider"] != "vapi" || en["outcome"] != "success" || en["description"] != "Rotated the webhook secret" {
		t.Fatalf("rotation entry %v", en)
	}
	res := b.api(http.MethodGet, "/api/audit", nil, token)
	apptest.AssertNoSecret(t, "the audit log", res.body, first, second, key)
	apptest.AssertNoSecret(t, "the activity page", b.get("/settings/activity").body, first, second, key)
}

// TestSettingsTabsNameActivityForAdminsOnly: the settings pages' tabs link
// the activity page for admins (marked current on it) and not for members,
// whom it refuses.
func TestSettingsTabsNameActivityForAdminsOnly(t *testing.T) {
	e := newEnv(t)
	admin, _, orgID := e.admin()
	member, _ := e.member(orgID)
	for _, page := range []string{"/settings/team", "/settings/account", "/settings/activity"} {
		nav := testid(admin.get(page).doc(t), "settings-nav")
		link := nav.Find(`a[href="/settings/activity"]`)
		if link.Length() != 1 {
			t.Fatalf("admin on %s: %d activity tabs", page, link.Length())
		}
		if current, _ := link.Attr("aria-current"); (current == "page") != (page == "/settings/activity") {
			t.Errorf("admin on %s: activity tab aria-current %q", page, current)
		}
	}
	for _, page := range []string{"/settings/team", "/settings/account"} {
		if n := testid(member.get(page).doc(t), "settings-nav").Find(`a[href="/settings/activity"]`).Length(); n != 0 {
			t.Errorf("member on %s: the tabs link the activity page", page)
		}
	}
}
