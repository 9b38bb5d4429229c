package backfill_test

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"byoc/app"
	"byoc/app/backfill"
)

const legacyKeyHex = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

// Written by the old service (Node's crypto, aes-256-gcm, under
// legacyKeyHex) with IVs 01 02 03 ...: known answers for both IV sizes.
const (
	nodeTwilio12 = "0102030405060708090a0b0c:710891d9ef58e0ca72148e5274516dc1:015064c38b78d02f9ea7c8a808cd253032dd93c605c2d2761aa5cc962d55462c20b8738df34c88a6378008ad417e4b5e13138cb5279d0bf433c7b8447fbd30c902becec86325e535f669b35b709819cc0e1a0bc53f48445880b3147235542e0aeeedd243370a971d0fd0a8378f0e133def418f857d5678cdac65614203a0ac8f"
	nodeTwilio16 = "0102030405060708090a0b0c0d0e0f10:4ad614af808c1cfea0da5456e357ae9f:4829ada64a62cdc43236cc9216d6823bf943e26acfa9c19e36e8bbbacceba09f669ef3839aaf1a852b4952dd632ba6fe6e3e0a84b8c5d218dd8816c6f13c594d6f003c6acf3c189e73e6ac06a7fbd24c614563afde160db73e1369adc1e2ddff2c76affde941bc3d079c9842ded85b8f3c7ebb2b8d437196a198a3c44e2e4120"
	nodePlain    = `{"account_sid":"AC0123456789abcdef0123456789abcdef","authToken":"0123456789abcdef0123456789abcdef","phoneNumber":"+14155550100"}`
)

func legacyKey(t testing.TB) *backfill.LegacyKey {
	t.Helper()
	k, err := backfill.ParseLegacyKey(legacyKeyHex)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// legacySeal writes plaintext as the old service did: hex(iv):hex(tag):hex(ct)
// with a random IV of ivLen bytes.
func legacySeal(t testing.TB, keyHex string, ivLen int, plaintext string) string {
	t.Helper()
	key, err := hex.DecodeString(keyHex)
	if err != nil {
		t.Fatal(err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	gcm, err := cipher.NewGCMWithNonceSize(block, ivLen)
	if err != nil {
		t.Fatal(err)
	}
	iv := make([]byte, ivLen)
	_, _ = rand.Read(iv)
	sealed := gcm.Seal(nil, iv, []byte(plaintext), nil)
	ct, tag := sealed[:len(sealed)-16], sealed[len(sealed)-16:]
	return hex.EncodeToString(iv) + ":" + hex.EncodeToString(tag) + ":" + hex.EncodeToString(ct)
}

func TestPlaintextReadsTheOldServiceFormat(t *testing.T) {
	k := legacyKey(t)
	for _, tt := range []struct{ name, stored string }{
		{"12-byte IV written by Node", nodeTwilio12},
		{"16-byte IV written by Node", nodeTwilio16},
		{"upper-case hex and spaces around", "  " + strings.ToUpper(nodeTwilio12) + "\n"},
		{"plain JSON", nodePlain},
		{"a fresh 12-byte IV", legacySeal(t, legacyKeyHex, 12, nodePlain)},
		{"a fresh 16-byte IV", legacySeal(t, legacyKeyHex, 16, nodePlain)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := k.Plaintext(tt.stored)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != nodePlain {
				t.Fatalf("got %q", got)
			}
		})
	}
}

func TestPlaintextRefusesWhatItCannotRead(t *testing.T) {
	k := legacyKey(t)
	parts := strings.Split(nodeTwilio12, ":")
	flipped := []byte(parts[2])
	flipped[0] ^= 1 // '0' becomes '1'
	otherKey := strings.Repeat("ab", 32)
	for _, tt := range []struct {
		name, stored string
		want         error
	}{
		{"empty", "  ", backfill.ErrLegacyEmpty},
		{"too large", "{" + strings.Repeat(" ", backfill.MaxLegacyConfig) + "}", backfill.ErrLegacyTooLarge},
		{"two parts", parts[0] + ":" + parts[2], backfill.ErrLegacyFormat},
		{"four parts", nodeTwilio12 + ":00", backfill.ErrLegacyFormat},
		{"not hex", parts[0] + ":" + parts[1] + ":zz" + parts[2], backfill.ErrLegacyFormat},
		{"odd hex", parts[0] + ":" + parts[1] + ":0" + parts[2], backfill.ErrLegacyFormat},
		{"8-byte IV", "0102030405060708:" + parts[1] + ":" + parts[2], backfill.ErrLegacyIV},
		{"15-byte tag", parts[0] + ":" + parts[1][2:] + ":" + parts[2], backfill.ErrLegacyTag},
		{"no ciphertext", parts[0] + ":" + parts[1] + ":", backfill.ErrLegacyJSON},
		{"altered ciphertext", parts[0] + ":" + parts[1] + ":" + string(flipped), backfill.ErrLegacyDecrypt},
		{"IV of the other size", parts[0] + "0d0e0f10:" + parts[1] + ":" + parts[2], backfill.ErrLegacyDecrypt},
		{"another key", legacySeal(t, otherKey, 12, nodePlain), backfill.ErrLegacyDecrypt},
		{"decrypts to a JSON list", legacySeal(t, legacyKeyHex, 12, `["apiKey"]`), backfill.ErrLegacyJSON},
		{"decrypts to broken JSON", legacySeal(t, legacyKeyHex, 16, `{"apiKey": "sk-live-1234567890`), backfill.ErrLegacyJSON},
		{"plain broken JSON", `{"apiKey": "sk-live-1234567890"`, backfill.ErrLegacyJSON},
		{"JSON followed by more", nodePlain + ` {}`, backfill.ErrLegacyJSON},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := k.Plaintext(tt.stored)
			if !errors.Is(err, tt.want) || got != nil {
				t.Fatalf("got %q, %v; want %v", got, err, tt.want)
			}
			if strings.Contains(err.Error(), "sk-live") || strings.Contains(err.Error(), parts[2][:16]) {
				t.Fatalf("the error quotes the data: %v", err)
			}
		})
	}
}

func TestParseLegacyKey(t *testing.T) {
	for _, bad := range []string{"", legacyKeyHex[:62], legacyKeyHex + "00", "zz" + legacyKeyHex[2:]} {
		if _, err := backfill.ParseLegacyKey(bad); err == nil {
			t.Errorf("ParseLegacyKey accepted a key of %d characters", len(bad))
		} else if bad != "" && strings.Contains(err.Error(), bad) {
			t.Error("the error quotes the key")
		}
	}
}

func TestDecodeChecksAsASaveDoes(t *testing.T) {
	const token = "0123456789abcdef0123456789abcdef"
	for _, tt := range []struct {
		name     string
		provider app.Provider
		json     string
		want     app.Config
		fields   []string // the fields refused, when it is refused
		err      string   // what the error says otherwise
	}{
		{name: "twilio in the API's names", provider: app.Twilio,
			json: `{"accountSid":"AC0123456789abcdef0123456789abcdef","authToken":"` + token + `","phoneNumber":"(415) 555-0100","whatsappNumber":"whatsapp:+14155550101"}`,
			want: app.TwilioConfig{AccountSID: "AC0123456789abcdef0123456789abcdef", AuthToken: app.NewSecret(token),
				PhoneNumber: "+14155550100", WhatsAppNumber: "+14155550101"}},
		{name: "twilio in snake case, extra keys ignored", provider: app.Twilio,
			json: `{"account_sid":" AC0123456789abcdef0123456789abcdef ","AUTH_TOKEN":"` + token + `","phone_number":"+14155550100","whatsapp_number":null,"region":"us1","createdAt":12}`,
			want: app.TwilioConfig{AccountSID: "AC0123456789abcdef0123456789abcdef", AuthToken: app.NewSecret(token), PhoneNumber: "+14155550100"}},
		{name: "twilio with a bad SID and no number", provider: app.Twilio,
			json: `{"accountSid":"SK0123456789abcdef0123456789abcdef","authToken":"` + token + `"}`, fields: []string{"accountSid", "phoneNumber"}},
		{name: "a number given as a number", provider: app.Twilio, json: `{"phoneNumber":14155550100}`, err: "field phoneNumber is not text"},
		{name: "one field twice, differently", provider: app.Resend, json: `{"apiKey":"re_abcdefghij","api_key":"re_klmnopqrst"}`,
			err: "field apiKey is given twice with different values"},
		{name: "one field twice, alike", provider: app.Resend, json: `{"apiKey":"re_abcdefghij","api_key":"re_abcdefghij","from_email":"hello@example.com"}`,
			want: app.ResendConfig{APIKey: app.NewSecret("re_abcdefghij"), FromEmail: "hello@example.com"}},
		{name: "resend key without its prefix", provider: app.Resend, json: `{"apiKey":"sk_abcdefghijkl"}`, fields: []string{"apiKey"}},
		{name: "vapi, region by default", provider: app.Vapi, json: `{"api_key":"11111111-2222-4333-8444-555555555555","webhook_secret":"whsec-0123456789abcdef"}`,
			want: app.VapiConfig{APIKey: app.NewSecret("11111111-2222-4333-8444-555555555555"), WebhookSecret: app.NewSecret("whsec-0123456789abcdef"), Region: app.VapiUS}},
		{name: "vapi without a key", provider: app.Vapi, json: `{"region":"eu"}`, fields: []string{"apiKey"}},
		{name: "elevenlabs", provider: app.ElevenLabs, json: `{"apiKey":"sk_0123456789abcdef","voice_id":"21m00Tcm4TlvDq8ikWAM"}`,
			want: app.ElevenLabsConfig{APIKey: app.NewSecret("sk_0123456789abcdef"), VoiceID: "21m00Tcm4TlvDq8ikWAM"}},
		{name: "google with Google's own token answer", provider: app.GoogleCalendar,
			json: `{"access_token":"ya29.x","refresh_token":"1//0refresh-token_abc","scope":"https://www.googleapis.com/auth/calendar.events openid openid","token_type":"Bearer","expiry_date":1700000000000,"email":"owner@example.com"}`,
			want: app.GoogleCalendarConfig{RefreshToken: app.NewSecret("1//0refresh-token_abc"), Email: "owner@example.com",
				Scopes: []string{"https://www.googleapis.com/auth/calendar.events", "openid"}}},
		{name: "google with scopes as a list and an odd e-mail", provider: app.GoogleCalendar,
			json: `{"refreshToken":"1//0refresh","scopes":["b","a"],"email":"Owner <owner@example.com>"}`,
			want: app.GoogleCalendarConfig{RefreshToken: app.NewSecret("1//0refresh"), Scopes: []string{"a", "b"}}},
		{name: "google without a refresh token", provider: app.GoogleCalendar, json: `{"access_token":"ya29.x"}`,
			err: backfill.ErrNoRefreshToken.Error()},
		{name: "google with a broken refresh token", provider: app.GoogleCalendar, json: `{"refresh_token":"1//0 refresh"}`,
			err: "field refreshToken is not a refresh token"},
		{name: "google with scopes of the wrong kind", provider: app.GoogleCalendar, json: `{"refresh_token":"1//0r","scopes":"a b"}`,
			err: "field scopes is not a list of text"},
		{name: "not an object", provider: app.Resend, json: `"re_abcdefghij"`, err: backfill.ErrLegacyJSON.Error()},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := backfill.Decode(app.MustDescribe(tt.provider), []byte(tt.json), "US")
			switch {
			case tt.fields != nil:
				got := app.ErrorFields(err)
				keys := make([]string, 0, len(got))
				for k := range got {
					keys = append(keys, k)
				}
				slices.Sort(keys)
				if app.ErrorCode(err) != app.EValidation || !slices.Equal(keys, tt.fields) {
					t.Fatalf("got %v (fields %v), want the fields %v refused", err, keys, tt.fields)
				}
			case tt.err != "":
				if err == nil || err.Error() != tt.err {
					t.Fatalf("got %v, want %q", err, tt.err)
				}
			case err != nil:
				t.Fatal(err)
			default:
				spec := app.MustDescribe(tt.provider)
				got, _ := spec.Encode(cfg)
				want, _ := spec.Encode(tt.want)
				if string(got) != string(want) {
					t.Fatalf("decoded to something else than expected (%d and %d bytes)", len(got), len(want))
				}
			}
			if err != nil {
				for _, secret := range []string{token, "re_abcdefghij", "1//0", "sk_abcdefghijkl"} {
					if strings.Contains(err.Error(), secret) || strings.Contains(app.ErrorMessage(err), secret) {
						t.Fatalf("the error quotes a value: %v", err)
					}
				}
			}
		})
	}
}

// fakeRefresher is a Google client that accepts one refresh token.
type fakeRefresher struct {
	configured bool
	good       string
}

func (f fakeRefresher) Configured() bool { return f.configured }

func (f fakeRefresher) Refresh(_ context.Context, rt string, _ time.Time) (app.OAuthToken, error) {
	if rt != f.good {
		return app.OAuthToken{}, &app.Error{Code: app.EVerificationFailed, Message: "Google refused the grant."}
	}
	return app.OAuthToken{AccessToken: app.NewSecret("ya29.new")}, nil
}

func TestGoogleGrantVerifier(t *testing.T) {
	ctx := context.Background()
	grant := app.GoogleCalendarConfig{RefreshToken: app.NewSecret("1//0good")}
	if _, err := backfill.GoogleGrant(fakeRefresher{true, "1//0good"}).Verify(ctx, "", grant); err != nil {
		t.Fatalf("a good grant: %v", err)
	}
	if _, err := backfill.GoogleGrant(fakeRefresher{true, "1//0other"}).Verify(ctx, "", grant); app.ErrorCode(err) != app.EVerificationFailed {
		t.Fatalf("a refused grant: %v", err)
	}
	if _, err := backfill.GoogleGrant(fakeRefresher{false, "1//0good"}).Verify(ctx, "", grant); app.ErrorCode(err) != app.ENotConfigured {
		t.Fatalf("a server without a Google client: %v", err)
	}
	if _, err := backfill.GoogleGrant(fakeRefresher{true, "1//0good"}).Verify(ctx, "", app.ResendConfig{}); app.ErrorCode(err) != app.EInternal {
		t.Fatalf("not a grant: %v", err)
	}
}
