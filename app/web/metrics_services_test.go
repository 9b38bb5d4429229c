package web_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"byoc/app"
	"byoc/app/apptest"
	"byoc/app/sandbox"
	"byoc/app/webhooks"
)

// verifications returns byoc_verifications_total of one provider, trigger
// and outcome.
func (e *env) verifications(provider, trigger, outcome string) float64 {
	e.t.Helper()
	return value(e.t, e.scrape(), "byoc_verifications_total",
		map[string]string{"provider": provider, "trigger": trigger, "outcome": outcome})
}

// TestVerificationMetrics: saves and connection tests with the stand-ins
// count one verification each, by provider, trigger and outcome; a request
// refused before the provider is asked counts none.
func TestVerificationMetrics(t *testing.T) {
	e := newEnv(t)
	b, token, orgID := e.admin()

	// Every series exists from the start, "scheduled" too.
	for _, p := range []string{"vapi", "twilio", "google_calendar", "resend", "elevenlabs"} {
		for _, tr := range []string{"save", "test", "scheduled"} {
			for _, o := range []string{"ok", "limited", "refused", "unavailable"} {
				if n := e.verifications(p, tr, o); n != 0 {
					t.Fatalf("%s %s %s starts at %v", p, tr, o, n)
				}
			}
		}
	}

	saves := []struct {
		provider string
		body     map[string]string
		status   int
		outcome  string
	}{
		{"twilio", map[string]string{"accountSid": twilioSID(), "authToken": twilioToken(), "phoneNumber": "+12025550142"}, 200, "ok"},
		{"resend", map[string]string{"apiKey": resendKey("restricted"), "fromEmail": "hello@example.com"}, 200, "limited"},
		{"elevenlabs", map[string]string{"apiKey": elevenKey("invalid"), "voiceId": "21m00Tcm4TlvDq8ikWAM"}, 422, "refused"},
		{"vapi", map[string]string{"apiKey": vapiKey("down")}, 502, "unavailable"},
	}
	for _, s := range saves {
		t.Run("save "+s.provider+" "+s.outcome, func(t *testing.T) {
			before := e.verifications(s.provider, "save", s.outcome)
			res := b.api(http.MethodPost, "/api/integrations/"+s.provider, s.body, token)
			if res.StatusCode != s.status {
				t.Fatalf("status %d, want %d\n%s", res.StatusCode, s.status, res.body)
			}
			if n := e.verifications(s.provider, "save", s.outcome) - before; n != 1 {
				t.Errorf("%s save %s counted %v times, want once", s.provider, s.outcome, n)
			}
		})
	}

	t.Run("refused before the provider is asked", func(t *testing.T) {
		before := e.scrape()
		res := b.api(http.MethodPost, "/api/integrations/twilio", map[string]string{"accountSid": "SK1", "authToken": "x"}, token)
		if res.StatusCode != http.StatusBadRequest {
			t.Fatalf("status %d", res.StatusCode)
		}
		after := e.scrape()
		for _, o := range []string{"ok", "limited", "refused", "unavailable"} {
			want := map[string]string{"provider": "twilio", "trigger": "save", "outcome": o}
			if d := value(t, after, "byoc_verifications_total", want) - value(t, before, "byoc_verifications_total", want); d != 0 {
				t.Errorf("invalid input counted as %s", o)
			}
		}
	})

	t.Run("connection tests", func(t *testing.T) {
		e.store(orgID, app.ElevenLabsConfig{APIKey: app.NewSecret(elevenKey("invalid")), VoiceID: "21m00Tcm4TlvDq8ikWAM"})
		for _, tt := range []struct {
			provider, outcome string
			status            int
		}{{"twilio", "ok", 200}, {"resend", "limited", 200}, {"elevenlabs", "refused", 422}} {
			before := e.verifications(tt.provider, "test", tt.outcome)
			res := b.api(http.MethodPost, "/api/integrations/"+tt.provider+"/verify", nil, token)
			if res.StatusCode != tt.status {
				t.Fatalf("%s: status %d\n%s", tt.provider, res.StatusCode, res.body)
			}
			if n := e.verifications(tt.provider, "test", tt.outcome) - before; n != 1 {
				t.Errorf("%s test %s counted %v times, want once", tt.provider, tt.outcome, n)
			}
		}
		e.store(orgID, app.ResendConfig{APIKey: app.NewSecret(resendKey("down"))})
		before := e.verifications("resend", "test", "unavailable")
		if res := b.api(http.MethodPost, "/api/integrations/resend/verify", nil, token); res.StatusCode != http.StatusBadGateway {
			t.Fatalf("resend down: status %d", res.StatusCode)
		}
		if n := e.verifications("resend", "test", "unavailable") - before; n != 1 {
			t.Errorf("an unreachable provider counted %v times, want once", n)
		}
		if n := e.verifications("vapi", "test", "ok") + e.verifications("vapi", "test", "refused"); n != 0 {
			t.Errorf("a test of nothing stored counted %v verifications", n)
		}
		if res := b.api(http.MethodPost, "/api/integrations/vapi/verify", nil, token); res.StatusCode != http.StatusNotFound {
			t.Fatalf("vapi with nothing stored: status %d", res.StatusCode)
		}
	})
}

// TestGoogleMetrics: the sign-in counts a save verification, a connection
// test with an expired access token counts a refresh Google grants, and one
// after the grant was revoked at Google counts a refused refresh.
func TestGoogleMetrics(t *testing.T) {
	e := newEnv(t, withGoogle)
	b, token, orgID := e.admin()
	refreshes := func(outcome string) float64 {
		return value(t, e.scrape(), "byoc_google_token_refresh_total", map[string]string{"outcome": outcome})
	}
	for _, o := range []string{"ok", "refused", "unavailable", "error"} {
		if n := refreshes(o); n != 0 {
			t.Fatalf("refresh %s starts at %v", o, n)
		}
	}

	b.connectGoogle()
	if n := e.verifications("google_calendar", "save", "ok"); n != 1 {
		t.Errorf("the sign-in counted %v ok save verifications, want 1", n)
	}

	cfg, _ := e.storedGoogle(orgID)
	cfg.Expiry = time.Now().Add(-time.Hour)
	e.store(orgID, cfg)
	if res := b.api(http.MethodPost, "/api/integrations/google_calendar/verify", nil, token); res.StatusCode != http.StatusOK {
		t.Fatalf("verify with an expired token: %d\n%s", res.StatusCode, res.body)
	}
	if n := refreshes("ok"); n != 1 {
		t.Errorf("%v ok refreshes after one, want 1", n)
	}
	if n := e.verifications("google_calendar", "test", "ok"); n != 1 {
		t.Errorf("%v ok tests, want 1", n)
	}

	e.google.RevokeGrants(sandbox.GoogleDefaultEmail)
	res := b.api(http.MethodPost, "/api/integrations/google_calendar/verify", nil, token)
	if res.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("verify after revocation: %d\n%s", res.StatusCode, res.body)
	}
	if n := refreshes("refused"); n != 1 {
		t.Errorf("%v refused refreshes after a revocation, want 1", n)
	}
	if n := e.verifications("google_calendar", "test", "refused"); n != 1 {
		t.Errorf("%v refused tests, want 1", n)
	}
	assertNoSecrets(t, e, cfg.RefreshToken.Reveal(), cfg.AccessToken.Reveal())
}

// TestCredentialReadMetrics: reads of decrypted credentials count as cache
// hits or misses (the credential service's and the webhook routing's), and
// each writes a debug line without the secret.
func TestCredentialReadMetrics(t *testing.T) {
	e := newEnv(t)
	secret := "whsec-" + apptest.RandomHex(16)
	b, token, key, assistant := connectVapiKey(t, e, secret)
	allowSecretHeader(t, b, token)
	reads := func() (hit, miss float64) {
		f := e.scrape()
		return value(t, f, "byoc_credential_reads_total", map[string]string{"cache": "hit"}),
			value(t, f, "byoc_credential_reads_total", map[string]string{"cache": "miss"})
	}

	t.Run("credential service", func(t *testing.T) {
		hit0, miss0 := reads()
		// A Test connection checks the stored credentials, never a cached
		// copy: each reads the store.
		for range 2 {
			if res := b.api(http.MethodPost, "/api/integrations/vapi/verify", nil, token); res.StatusCode != http.StatusOK {
				t.Fatalf("verify: %d\n%s", res.StatusCode, res.body)
			}
		}
		hit, miss := reads()
		if hit-hit0 != 0 || miss-miss0 != 2 {
			t.Errorf("two tests counted %v hits and %v misses, want 0 and 2", hit-hit0, miss-miss0)
		}
		// Other reads go through the cache: the first fills it.
		var orgID string
		if err := e.db.Pool.QueryRow(t.Context(), `select org_id::text from assistant_org_mapping where vapi_assistant_id = $1`,
			assistant).Scan(&orgID); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if _, err := e.creds.Get(t.Context(), orgID, app.Vapi); err != nil {
				t.Fatal(err)
			}
		}
		hit0, miss0 = hit, miss
		if hit, miss = reads(); hit-hit0 != 1 || miss-miss0 != 1 {
			t.Errorf("two cached reads counted %v hits and %v misses, want one of each", hit-hit0, miss-miss0)
		}
	})

	t.Run("webhook secrets", func(t *testing.T) {
		hit0, miss0 := reads()
		for range 3 {
			res := e.do(request(http.MethodPost, "/api/webhooks/vapi", vapiEvent(assistant, "speech-update"), webhooks.HeaderVapiSecret, secret))
			if res.StatusCode != http.StatusOK {
				t.Fatalf("webhook: %d\n%s", res.StatusCode, res.body)
			}
		}
		hit, miss := reads()
		if hit-hit0 != 2 || miss-miss0 != 1 {
			t.Errorf("three webhooks counted %v hits and %v misses, want 2 and 1", hit-hit0, miss-miss0)
		}
	})

	t.Run("debug lines", func(t *testing.T) {
		var hits, misses int
		for _, l := range strings.Split(e.log.String(), "\n") {
			if !strings.Contains(l, `"msg":"credential read"`) {
				continue
			}
			if !strings.Contains(l, `"level":"DEBUG"`) || !strings.Contains(l, `"org_id":"`) ||
				!strings.Contains(l, `"provider":"`) || !strings.Contains(l, `"duration_ms":`) {
				t.Errorf("credential read line %s", l)
			}
			switch {
			case strings.Contains(l, `"cache":"hit"`):
				hits++
			case strings.Contains(l, `"cache":"miss"`):
				misses++
			}
		}
		if hits < 3 || misses < 2 {
			t.Errorf("%d hit and %d miss lines, want a line per read", hits, misses)
		}
		assertNoSecrets(t, e, secret, key)
	})
}

// TestQueriesPerRequest: statements are counted per request and route; a
// warm webhook (its org and secret cached) sends none.
func TestQueriesPerRequest(t *testing.T) {
	e := newEnv(t)
	secret := "whsec-" + apptest.RandomHex(16)
	b, token, assistant := connectVapi(t, e, secret)
	allowSecretHeader(t, b, token)
	b.status(token)
	webhook := func() {
		t.Helper()
		res := e.do(request(http.MethodPost, "/api/webhooks/vapi", vapiEvent(assistant, "speech-update"), webhooks.HeaderVapiSecret, secret))
		if res.StatusCode != http.StatusOK {
			t.Fatalf("webhook: %d\n%s", res.StatusCode, res.body)
		}
	}
	route := map[string]string{"route": "/api/webhooks/vapi"}

	webhook() // cold: resolves the assistant and reads the secret
	n0, cold := histogram(t, e.scrape(), "byoc_db_queries_per_request", route)
	if n0 != 1 || cold < 2 {
		t.Fatalf("the cold webhook: %d requests, %v statements", n0, cold)
	}
	for range 5 {
		webhook()
	}
	n, sum := histogram(t, e.scrape(), "byoc_db_queries_per_request", route)
	if n-n0 != 5 || sum != cold {
		t.Errorf("5 warm webhooks counted as %d requests with %v statements, want 5 with 0", n-n0, sum-cold)
	}

	if n, sum := histogram(t, e.scrape(), "byoc_db_queries_per_request", map[string]string{"route": "/api/integrations/status"}); n != 1 || sum < 1 {
		t.Errorf("the status API: %d requests, %v statements", n, sum)
	}
	if n, sum := histogram(t, e.scrape(), "byoc_db_queries_per_request", map[string]string{"route": "/healthz"}); n != 0 || sum != 0 {
		t.Errorf("healthz before any request: %d, %v", n, sum)
	}
}
