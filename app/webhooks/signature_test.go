package webhooks_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"byoc/app"
	"byoc/app/apptest"
	"byoc/app/credentials"
	"byoc/app/keyring"
	"byoc/app/webhooks"
)

func TestSignatureCases(t *testing.T) {
	e := newEnv(t)
	const secret = "org-webhook-secret-4d1f9a7e"
	o := e.newOrg(secret)
	now := time.Now()
	sec := now.Unix()
	body := msg("speech-update", o.assistant, map[string]any{"status": "started", "role": "assistant", "timestamp": now.UnixMilli()})
	sig := func(ts int64) string { return apptest.VapiSignature(secret, strconv.FormatInt(ts, 10), body) }

	// changed differs from body in one byte and still names the assistant.
	changed := bytes.Replace(body, []byte(`"started"`), []byte(`"startee"`), 1)
	if bytes.Equal(changed, body) {
		t.Fatal("test body has no byte to change")
	}
	// reserialized is the same JSON content with different bytes.
	var generic any
	if err := json.Unmarshal(body, &generic); err != nil {
		t.Fatal(err)
	}
	reserialized, err := json.MarshalIndent(generic, "", "  ")
	if err != nil || bytes.Equal(reserialized, body) {
		t.Fatalf("re-serialized body: %v", err)
	}

	tests := []struct {
		name    string
		headers header
		body    []byte // nil: body
		want    string // outcome
	}{
		{"x-vapi-secret", header{"X-Vapi-Secret": secret}, nil, webhooks.OutcomeVerified},
		{"bearer", header{"Authorization": "Bearer " + secret}, nil, webhooks.OutcomeVerified},
		{"bearer lower case scheme", header{"Authorization": "bearer " + secret}, nil, webhooks.OutcomeVerified},
		{"hmac x-signature", header{"X-Signature": sig(sec), "X-Timestamp": strconv.FormatInt(sec, 10)}, nil, webhooks.OutcomeVerified},
		{"hmac with sha256= prefix", header{"X-Signature": "sha256=" + sig(sec), "X-Timestamp": strconv.FormatInt(sec, 10)}, nil, webhooks.OutcomeVerified},
		{"hmac upper-case hex", header{"X-Signature": strings.ToUpper(sig(sec)), "X-Timestamp": strconv.FormatInt(sec, 10)}, nil, webhooks.OutcomeVerified},
		{"hmac x-vapi-signature", header{"X-Vapi-Signature": sig(sec), "X-Vapi-Timestamp": strconv.FormatInt(sec, 10)}, nil, webhooks.OutcomeVerified},
		{"hmac x-vapi-signature with prefix", header{"X-Vapi-Signature": "sha256=" + sig(sec), "X-Timestamp": strconv.FormatInt(sec, 10)}, nil, webhooks.OutcomeVerified},
		{"hmac timestamp in milliseconds", header{"X-Signature": sig(now.UnixMilli()), "X-Timestamp": strconv.FormatInt(now.UnixMilli(), 10)}, nil, webhooks.OutcomeVerified},
		{"hmac 299 s old", header{"X-Signature": sig(sec - 299), "X-Timestamp": strconv.FormatInt(sec-299, 10)}, nil, webhooks.OutcomeVerified},
		{"hmac 299 s ahead", header{"X-Signature": sig(sec + 299), "X-Timestamp": strconv.FormatInt(sec+299, 10)}, nil, webhooks.OutcomeVerified},
		{"wrong secret header beside a valid signature", header{"X-Vapi-Secret": "nope", "X-Signature": sig(sec), "X-Timestamp": strconv.FormatInt(sec, 10)}, nil, webhooks.OutcomeVerified},

		{"x-vapi-secret wrong", header{"X-Vapi-Secret": "org-webhook-secret-4d1f9a7f"}, nil, webhooks.OutcomeInvalidSignature},
		{"x-vapi-secret prefix of the secret", header{"X-Vapi-Secret": secret[:10]}, nil, webhooks.OutcomeInvalidSignature},
		{"x-vapi-secret with extra characters", header{"X-Vapi-Secret": secret + "x"}, nil, webhooks.OutcomeInvalidSignature},
		{"bearer wrong", header{"Authorization": "Bearer wrong-secret"}, nil, webhooks.OutcomeInvalidSignature},
		{"basic instead of bearer", header{"Authorization": "Basic " + secret}, nil, webhooks.OutcomeInvalidSignature},
		{"secret without scheme in authorization", header{"Authorization": secret}, nil, webhooks.OutcomeInvalidSignature},
		{"hmac wrong secret", header{"X-Signature": apptest.VapiSignature("other-secret", strconv.FormatInt(sec, 10), body), "X-Timestamp": strconv.FormatInt(sec, 10)}, nil, webhooks.OutcomeInvalidSignature},
		{"hmac one body byte changed", header{"X-Signature": sig(sec), "X-Timestamp": strconv.FormatInt(sec, 10)}, changed, webhooks.OutcomeInvalidSignature},
		{"hmac JSON re-serialized", header{"X-Signature": sig(sec), "X-Timestamp": strconv.FormatInt(sec, 10)}, reserialized, webhooks.OutcomeInvalidSignature},
		{"hmac timestamp header differs from the signed one", header{"X-Signature": sig(sec), "X-Timestamp": strconv.FormatInt(sec+1, 10)}, nil, webhooks.OutcomeInvalidSignature},
		{"no headers", header{}, nil, webhooks.OutcomeInvalidSignature},
		{"signature without timestamp", header{"X-Signature": sig(sec)}, nil, webhooks.OutcomeInvalidSignature},
		{"timestamp without signature", header{"X-Timestamp": strconv.FormatInt(sec, 10)}, nil, webhooks.OutcomeInvalidSignature},
		{"empty secret header", header{"X-Vapi-Secret": ""}, nil, webhooks.OutcomeInvalidSignature},
		{"hmac 301 s old", header{"X-Signature": sig(sec - 301), "X-Timestamp": strconv.FormatInt(sec-301, 10)}, nil, webhooks.OutcomeStaleTimestamp},
		{"hmac 301 s ahead", header{"X-Signature": sig(sec + 301), "X-Timestamp": strconv.FormatInt(sec+301, 10)}, nil, webhooks.OutcomeStaleTimestamp},
		{"hmac milliseconds 301 s old", header{"X-Signature": sig(now.UnixMilli() - 301000), "X-Timestamp": strconv.FormatInt(now.UnixMilli()-301000, 10)}, nil, webhooks.OutcomeStaleTimestamp},
		{"hmac stale timestamp with a wrong signature", header{"X-Signature": apptest.VapiSignature("x", strconv.FormatInt(sec-301, 10), body), "X-Timestamp": strconv.FormatInt(sec-301, 10)}, nil, webhooks.OutcomeInvalidSignature},
		{"hmac timestamp not a number", header{"X-Signature": apptest.VapiSignature(secret, "soon", body), "X-Timestamp": "soon"}, nil, webhooks.OutcomeInvalidSignature},
		{"hmac negative timestamp", header{"X-Signature": apptest.VapiSignature(secret, "-5", body), "X-Timestamp": "-5"}, nil, webhooks.OutcomeInvalidSignature},
		{"truncated signature", header{"X-Signature": sig(sec)[:62], "X-Timestamp": strconv.FormatInt(sec, 10)}, nil, webhooks.OutcomeInvalidSignature},
		{"odd-length signature", header{"X-Signature": sig(sec)[:63], "X-Timestamp": strconv.FormatInt(sec, 10)}, nil, webhooks.OutcomeInvalidSignature},
		{"non-hex signature", header{"X-Signature": "zz" + sig(sec)[2:], "X-Timestamp": strconv.FormatInt(sec, 10)}, nil, webhooks.OutcomeInvalidSignature},
		{"signature too long", header{"X-Signature": sig(sec) + "00", "X-Timestamp": strconv.FormatInt(sec, 10)}, nil, webhooks.OutcomeInvalidSignature},
		{"prefix only", header{"X-Signature": "sha256=", "X-Timestamp": strconv.FormatInt(sec, 10)}, nil, webhooks.OutcomeInvalidSignature},
		{"base64 signature", header{"X-Signature": "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=", "X-Timestamp": strconv.FormatInt(sec, 10)}, nil, webhooks.OutcomeInvalidSignature},
	}
	var refused string // the body of the first 401, which every 401 must repeat
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := body
			if tt.body != nil {
				b = tt.body
			}
			before := e.outcome(tt.want)
			resp := e.h.Handle(context.Background(), req(b, tt.headers, now))
			if tt.want == webhooks.OutcomeVerified {
				if resp.Status != http.StatusOK || encode(t, resp.Body) != `{"received":true}` {
					t.Fatalf("got %d %s, want 200 {\"received\":true}", resp.Status, encode(t, resp.Body))
				}
			} else {
				if resp.Status != http.StatusUnauthorized || errorCode(t, resp) != "invalid_signature" {
					t.Fatalf("got %d %s, want 401 invalid_signature", resp.Status, encode(t, resp.Body))
				}
				got := encode(t, resp.Body)
				if refused == "" {
					refused = got
				} else if got != refused {
					t.Errorf("401 body %s differs from an earlier 401 body %s", got, refused)
				}
				if strings.Contains(got, secret) {
					t.Errorf("401 body reveals the secret")
				}
			}
			if after := e.outcome(tt.want); after != before+1 {
				t.Errorf("outcome %s counted %d -> %d, want one more", tt.want, before, after)
			}
		})
	}
}

func TestDefaultSecret(t *testing.T) {
	const def = "server-default-secret-77aa"
	e := newEnv(t, withOptions(webhooks.Options{DefaultSecret: app.NewSecret(def)}))
	ownless := e.newOrg("") // no Vapi credentials stored at all
	withEmpty := e.newOrg("")
	e.setVapi(withEmpty.id, "") // credentials without a webhook secret
	own := e.newOrg("org-own-secret-123456")

	tests := []struct {
		name      string
		assistant string
		secret    string
		want      int
	}{
		{"org without credentials, default secret", ownless.assistant, def, http.StatusOK},
		{"org without credentials, other secret", ownless.assistant, "org-own-secret-123456", http.StatusUnauthorized},
		{"org without webhook secret, default secret", withEmpty.assistant, def, http.StatusOK},
		{"org with its own secret", own.assistant, own.secret, http.StatusOK},
		{"org with its own secret refuses the default", own.assistant, def, http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := e.handle(tt.secret, msg("hang", tt.assistant, nil)); got.Status != tt.want {
				t.Errorf("status %d, want %d (%s)", got.Status, tt.want, encode(t, got.Body))
			}
		})
	}

	t.Run("no secret anywhere is refused", func(t *testing.T) {
		e2 := newEnv(t)
		o := e2.newOrg("")
		for _, h := range []header{{}, {"X-Vapi-Secret": ""}, {"Authorization": "Bearer "}, hmacHeaders("", time.Now().Unix(), msg("hang", o.assistant, nil))} {
			got := e2.h.Handle(context.Background(), req(msg("hang", o.assistant, nil), h, time.Now()))
			if got.Status != http.StatusUnauthorized {
				t.Errorf("headers %v: status %d, want 401", h, got.Status)
			}
		}
	})
}

func TestCrossOrgSignatureRefused(t *testing.T) {
	const def = "server-default-secret-cross"
	e := newEnv(t, withOptions(webhooks.Options{DefaultSecret: app.NewSecret(def)}))
	a := e.newOrg("org-a-secret-aaaaaaaa")
	b := e.newOrg("org-b-secret-bbbbbbbb")
	noSecret := e.newOrg("")
	now := time.Now()

	for _, target := range []org{a, noSecret} {
		body := msg("status-update", target.assistant, map[string]any{"status": "ringing", "timestamp": now.UnixMilli()})
		for name, h := range map[string]header{
			"x-vapi-secret": {"X-Vapi-Secret": b.secret},
			"bearer":        {"Authorization": "Bearer " + b.secret},
			"hmac":          hmacHeaders(b.secret, now.Unix(), body),
		} {
			got := e.h.Handle(context.Background(), req(body, h, now))
			if got.Status != http.StatusUnauthorized || errorCode(t, got) != "invalid_signature" {
				t.Errorf("%s signed by org B for %s: %d %s, want 401", name, target.id, got.Status, encode(t, got.Body))
			}
		}
		if n := callEventCount(t, target.id); n != 0 {
			t.Errorf("a refused webhook recorded %d events", n)
		}
	}
	// And B's own webhooks still pass with B's secret.
	if got := e.handle(b.secret, msg("hang", b.assistant, nil)); got.Status != http.StatusOK {
		t.Errorf("org B with its own secret: %d", got.Status)
	}
}

func TestDebugLogsFailedCheck(t *testing.T) {
	for _, debug := range []bool{false, true} {
		e := newEnv(t, withOptions(webhooks.Options{Debug: debug, Logger: nil}))
		const secret = "debug-secret-0123456789"
		o := e.newOrg(secret)
		now := time.Now()
		body := msg("hang", o.assistant, nil)
		e.h.Handle(context.Background(), req(body, header{}, now))
		e.h.Handle(context.Background(), req(body, hmacHeaders(secret, now.Unix()-1000, body), now))
		e.h.Handle(context.Background(), req(body, hmacHeaders("wrong", now.Unix(), body), now))
		logs := e.logs.String()
		for _, check := range []string{"header missing", "timestamp skew", "signature mismatch"} {
			if got := strings.Contains(logs, check); got != debug {
				t.Errorf("debug=%v: log mentions %q: %v\n%s", debug, check, got, logs)
			}
		}
		if strings.Contains(logs, secret) {
			t.Errorf("the log contains the secret")
		}
	}
}

// TestUnreadableSecretFailsClosed: an org whose stored Vapi credentials
// cannot be decrypted (a key-rotation mistake, a damaged row) may have a
// webhook secret of its own, so the shared default secret must not stand in
// for it: every delivery is refused with 503 (Vapi retries once the key is
// restored), logged as an operator problem, and no tool runs.
func TestUnreadableSecretFailsClosed(t *testing.T) {
	const def = "server-default-secret-unreadable"
	e := newEnv(t, withOptions(webhooks.Options{DefaultSecret: app.NewSecret(def)}))
	o := e.newOrg("org-own-secret-unreadable-1")
	e.setTwilio(o.id, orgTwilio)

	// The row is re-sealed under a key this server does not have.
	otherKey := make([]byte, 32)
	if _, err := rand.Read(otherKey); err != nil {
		t.Fatal(err)
	}
	other, err := keyring.New(otherKey)
	if err != nil {
		t.Fatal(err)
	}
	cfg := app.VapiConfig{APIKey: app.NewSecret("vapi-private-key-unreadable"), WebhookSecret: app.NewSecret(o.secret), Region: app.VapiUS}
	if _, err := credentials.New(e.db, other, credentials.Options{}).Save(context.Background(),
		app.Connection{OrgID: o.id, Config: cfg, VerifiedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	e.creds.Invalidate(o.id, "vapi")

	now := time.Now()
	for name, sign := range map[string]func(body []byte) header{
		"x-vapi-secret": func([]byte) header { return header{"X-Vapi-Secret": def} },
		"bearer":        func([]byte) header { return header{"Authorization": "Bearer " + def} },
		"hmac":          func(body []byte) header { return hmacHeaders(def, now.Unix(), body) },
	} {
		t.Run("default secret by "+name, func(t *testing.T) {
			body := toolCallsBody(t, o.assistant, now.UnixMilli(),
				tc{id: "call_" + name, name: "send_sms", args: map[string]any{"to": "+12025550123", "body": "forged"}})
			got := e.h.Handle(context.Background(), req(body, sign(body), now))
			if got.Status != http.StatusServiceUnavailable || errorCode(t, got) != app.EUnavailable {
				t.Fatalf("status %d %s, want 503 %s", got.Status, encode(t, got.Body), app.EUnavailable)
			}
		})
	}
	t.Run("its own secret cannot be checked either", func(t *testing.T) {
		if got := e.handle(o.secret, msg("hang", o.assistant, nil)); got.Status != http.StatusServiceUnavailable {
			t.Fatalf("status %d, want 503", got.Status)
		}
	})
	if n := len(e.sb.Twilio.Messages()); n != 0 {
		t.Fatalf("%d messages sent for a delivery that was refused", n)
	}
	if n := callEventCount(t, o.id); n != 0 {
		t.Fatalf("a refused delivery recorded %d events", n)
	}
	logs := e.logs.String()
	if !strings.Contains(logs, `"level":"ERROR"`) || !strings.Contains(logs, "cannot be decrypted") {
		t.Fatalf("the refusal is not logged as an operator problem:\n%s", logs)
	}
	if strings.Contains(logs, o.secret) || strings.Contains(logs, def) {
		t.Fatal("a secret reached the log")
	}

	t.Run("a readable row again is verified with its own secret", func(t *testing.T) {
		e.setVapi(o.id, o.secret)
		if got := e.handle(o.secret, msg("hang", o.assistant, nil)); got.Status != http.StatusOK {
			t.Fatalf("status %d, want 200", got.Status)
		}
	})
}
