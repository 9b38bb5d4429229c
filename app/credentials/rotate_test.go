package credentials_test

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"byoc/app"
	"byoc/app/credentials"
	"byoc/db/dbtest"
)

func TestRotateMovesEveryRowToThePrimaryKey(t *testing.T) {
	ctx := context.Background()
	d := dbtest.DB(t)
	oldKey, newKey1, strayKey := newKey(t), newKey(t), newKey(t)

	before := credentials.New(d, newKeyring(t, oldKey), credentials.Options{})
	orgA, orgB := dbtest.SeedOrg(t, "credentials service test"), dbtest.SeedOrg(t, "credentials service test")
	configs := sampleConfigs()
	for _, cfg := range configs {
		if _, err := before.Save(ctx, app.Connection{OrgID: orgA, Config: cfg, VerifiedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	// A row sealed by a key nobody has any more: it must be left alone.
	stray := credentials.New(d, newKeyring(t, strayKey), credentials.Options{})
	if _, err := stray.Save(ctx, app.Connection{OrgID: orgB, Config: configs[0], VerifiedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}

	during := credentials.New(d, newKeyring(t, newKey1, oldKey), credentials.Options{})
	rep, err := during.Rotate(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Rotated < len(configs) || rep.Undecryptable < 1 {
		t.Fatalf("report %v: want at least %d re-encrypted and 1 undecryptable", rep, len(configs))
	}

	// The old key can go now: every row of org A opens with the new one alone.
	after := credentials.New(d, newKeyring(t, newKey1), credentials.Options{})
	for _, want := range configs {
		got, err := after.Get(ctx, orgA, want.Provider())
		if err != nil {
			t.Fatalf("%s after rotation: %v", want.Provider(), err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s changed in rotation: %+v", want.Provider(), got)
		}
	}
	if _, err := after.Get(ctx, orgB, app.Vapi); !errors.Is(err, app.ErrUndecryptable) {
		t.Fatalf("the stray row: %v, want ErrUndecryptable", err)
	}

	again, err := during.Rotate(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	if again.Rotated != 0 {
		t.Fatalf("a second pass re-encrypted %d rows: %v", again.Rotated, again)
	}
}
