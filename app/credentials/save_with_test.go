package credentials_test

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"byoc/app"
	"byoc/db/dbtest"
)

func TestSaveWith(t *testing.T) {
	ctx := context.Background()
	s := newService(t, newKeyring(t, newKey(t)), nil)
	d := dbtest.DB(t)
	org := dbtest.SeedOrg(t, "credentials service test")
	cfgs := sampleConfigs()
	old, next := cfgs[0].(app.VapiConfig), cfgs[0].(app.VapiConfig)
	next.APIKey = app.NewSecret("vapi-key-next-0123456789")
	if err := s.Save(ctx, org, old, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, org, app.Vapi); err != nil { // cached now
		t.Fatal(err)
	}

	t.Run("a failing store keeps the previous credentials", func(t *testing.T) {
		for _, storeErr := range []error{errors.New("commit failed"), app.Errorf(app.EConflict, "Taken.")} {
			err := s.SaveWith(ctx, org, next, time.Now(), func(context.Context, app.CredentialRecord) error { return storeErr })
			want := app.EInternal
			if app.ErrorCode(storeErr) != "" {
				want = app.ErrorCode(storeErr)
			}
			if app.ErrorCode(err) != want {
				t.Errorf("err = %v, want code %s", err, want)
			}
			if got, err := s.Get(ctx, org, app.Vapi); err != nil || !reflect.DeepEqual(got, old) {
				t.Errorf("Get = %#v, %v; want the previous config", got, err)
			}
		}
	})

	t.Run("the store gets the sealed record and the cache is dropped", func(t *testing.T) {
		at := time.Date(2031, 2, 3, 4, 5, 6, 0, time.UTC)
		var got app.CredentialRecord
		err := s.SaveWith(ctx, org, &next, at, func(ctx context.Context, rec app.CredentialRecord) error {
			got = rec
			_, err := d.UpsertCredential(ctx, rec)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if got.OrgID != org || got.Provider != app.Vapi || got.LastVerifiedAt == nil || !got.LastVerifiedAt.Equal(at) {
			t.Errorf("record = %+v", got)
		}
		for _, secret := range []string{next.APIKey.Reveal(), next.WebhookSecret.Reveal()} {
			if bytes.Contains(got.Ciphertext, []byte(secret)) {
				t.Error("the record carries a secret in the clear")
			}
		}
		// Without the invalidation this would still be the cached old config.
		if cfg, err := s.Get(ctx, org, app.Vapi); err != nil || !reflect.DeepEqual(cfg, next) {
			t.Errorf("Get = %#v, %v; want the new config", cfg, err)
		}
	})

	t.Run("an unknown config is refused before the store runs", func(t *testing.T) {
		err := s.SaveWith(ctx, org, nil, time.Now(), func(context.Context, app.CredentialRecord) error {
			t.Error("store ran")
			return nil
		})
		if app.ErrorCode(err) != app.EInternal {
			t.Errorf("err = %v, want internal", err)
		}
	})
}
