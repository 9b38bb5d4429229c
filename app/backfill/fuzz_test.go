package backfill_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"byoc/app"
	"byoc/app/backfill"
)

// legacyErrors are every error Plaintext may return.
var legacyErrors = []error{backfill.ErrLegacyEmpty, backfill.ErrLegacyTooLarge, backfill.ErrLegacyFormat,
	backfill.ErrLegacyIV, backfill.ErrLegacyTag, backfill.ErrLegacyDecrypt, backfill.ErrLegacyJSON}

// FuzzLegacyPlaintext feeds the legacy format's reader any stored text: it
// never panics, answers one of its errors (which quote nothing) or a JSON
// object, and reads what the old service wrote.
func FuzzLegacyPlaintext(f *testing.F) {
	for _, s := range []string{nodeTwilio12, nodeTwilio16, nodePlain, "", ":", "::", "00:00:00", "{}", "{", "[]",
		"0102030405060708090a0b0c:710891d9ef58e0ca72148e5274516dc1:", strings.ToUpper(nodeTwilio16)} {
		f.Add(s)
	}
	k := legacyKey(f)
	f.Fuzz(func(t *testing.T, stored string) {
		got, err := k.Plaintext(stored)
		if err != nil {
			if got != nil {
				t.Fatal("an error with a plaintext")
			}
			known := false
			for _, e := range legacyErrors {
				known = known || err == e
			}
			if !known {
				t.Fatalf("an error of its own: %v", err)
			}
			return
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(got, &obj); err != nil {
			t.Fatalf("accepted something that is not a JSON object: %v", err)
		}
		// What the old service would write of it reads back the same.
		for _, iv := range []int{12, 16} {
			again, err := k.Plaintext(legacySeal(t, legacyKeyHex, iv, string(got)))
			if err != nil || !bytes.Equal(again, got) {
				t.Fatalf("a %d-byte IV sealing of an accepted plaintext: %v", iv, err)
			}
		}
	})
}

// FuzzDecode feeds every provider's decoder any JSON: it never panics, and
// either refuses in its own words (naming fields, never quoting values) or
// returns a config that BYOC's stored format keeps unchanged.
func FuzzDecode(f *testing.F) {
	for i, s := range []string{nodePlain, `{"apiKey":"re_abcdefghij","from_email":"a@b.co"}`,
		`{"refresh_token":"1//0abc","scope":"a b","scopes":["c"],"email":"x@y.z"}`, `{"api_key":null}`,
		`{"apiKey":1}`, `{"apiKey":"a","API_KEY":"b"}`, `[]`, `{"voiceId":"abc","apiKey":"sk_0123456789abcdef"}`,
		`{"apiKey":"11111111-2222-4333-8444-555555555555","region":"EU"}`} {
		f.Add(uint8(i), s)
	}
	f.Fuzz(func(t *testing.T, which uint8, doc string) {
		specs := app.Specs()
		spec := specs[int(which)%len(specs)]
		cfg, err := backfill.Decode(spec, []byte(doc), "US")
		if err != nil {
			msg := err.Error()
			var ae *app.Error
			switch {
			case errors.As(err, &ae):
				if ae.Code != app.EValidation || len(ae.Fields) == 0 {
					t.Fatalf("an app error that is not a per-field refusal: %v", err)
				}
				for name := range ae.Fields {
					if _, ok := spec.Field(name); !ok {
						t.Fatalf("a refusal of a field %s is not a field of %s", name, spec.Provider)
					}
				}
			case err == backfill.ErrLegacyJSON, err == backfill.ErrNoRefreshToken:
			case strings.HasPrefix(msg, "field "):
				name := strings.Fields(msg)[1]
				if _, ok := spec.Field(name); !ok && name != "refreshToken" && name != "scope" && name != "scopes" {
					t.Fatalf("an error about %s, not a field of %s: %v", name, spec.Provider, err)
				}
			default:
				t.Fatalf("an error of its own: %v", err)
			}
			return
		}
		if cfg.Provider() != spec.Provider {
			t.Fatalf("a %s config from %s's decoder", cfg.Provider(), spec.Provider)
		}
		stored, err := spec.Encode(cfg)
		if err != nil {
			t.Fatalf("an accepted config cannot be stored: %v", err)
		}
		back, err := spec.Decode(stored)
		if err != nil {
			t.Fatalf("the stored form of an accepted config cannot be read: %v", err)
		}
		again, err := spec.Encode(back)
		if err != nil || !bytes.Equal(again, stored) {
			t.Fatal("the stored form of an accepted config does not read back the same")
		}
	})
}
