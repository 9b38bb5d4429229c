package app_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"byoc/app"
)

func TestAsError(t *testing.T) {
	notFound := app.Errorf(app.ENotFound, "No such thing.")
	internal := app.Internal(errors.New("disk full"))
	plain := errors.New("connection reset")
	tests := []struct {
		name string
		err  error
		// same is the *Error AsError must return unchanged; nil means a
		// new EInternal error whose cause is err.
		same *app.Error
	}{
		{name: "domain error", err: notFound, same: notFound},
		{name: "internal domain error", err: internal, same: internal},
		{name: "wrapped domain error", err: fmt.Errorf("db: lock: %w", notFound), same: notFound},
		{name: "joined errors", err: errors.Join(plain, notFound), same: notFound},
		{name: "plain error", err: plain},
		{name: "wrapped plain error", err: fmt.Errorf("db: lock: %w", context.DeadlineExceeded)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := app.AsError(tt.err)
			if got == nil {
				t.Fatalf("AsError(%v) = nil", tt.err)
			}
			if tt.same != nil {
				if got != tt.same {
					t.Fatalf("AsError(%v) = %#v, want the *Error in the chain (%#v)", tt.err, got, tt.same)
				}
				return
			}
			if got.Code != app.EInternal || got.Message != app.Internal(nil).Message {
				t.Errorf("AsError(%v) = %q %q, want the generic EInternal error", tt.err, got.Code, got.Message)
			}
			if got.Cause != tt.err {
				t.Errorf("AsError(%v).Cause = %v, want the original error", tt.err, got.Cause)
			}
			if !errors.Is(got, tt.err) {
				t.Errorf("errors.Is(AsError(err), err) = false")
			}
		})
	}

	t.Run("nil", func(t *testing.T) {
		if got := app.AsError(nil); got != nil {
			t.Fatalf("AsError(nil) = %#v, want nil", got)
		}
	})
}
