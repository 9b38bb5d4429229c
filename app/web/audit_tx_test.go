package web_test

import (
	"context"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"byoc/app/apptest"
	"byoc/db/dbtest"
)

// refuseAuditEntries makes the audit log refuse every entry of the org
// until the test ends.
func refuseAuditEntries(t *testing.T, orgID string) {
	t.Helper()
	ctx := context.Background()
	pool := dbtest.DB(t).Pool
	name := "refuse_audit_" + apptest.RandomHex(6)
	if _, err := pool.Exec(ctx, `create function `+name+`() returns trigger language plpgsql as $$
		begin raise exception 'audit entry refused by the test'; end $$`); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `create trigger `+name+` before insert on audit_log for each row
		when (new.org_id = '`+orgID+`'::uuid) execute function `+name+`()`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := pool.Exec(context.Background(), `drop trigger `+name+` on audit_log; drop function `+name+`()`); err != nil {
			t.Error(err)
		}
	})
}

// A change whose audit entry cannot be written answers as any failed write
// does: 500 with the generic internal error, nothing of the cause or the
// input, and nothing changed.
func TestARefusedAuditEntryAnswersAsAFailedWrite(t *testing.T) {
	e := newEnv(t)
	admin := e.apiAdmin()
	kept := resendKey()
	if res := e.call(admin, http.MethodPost, "/api/integrations/resend", map[string]string{"apiKey": kept}); res.StatusCode != http.StatusOK {
		t.Fatalf("save: %d\n%s", res.StatusCode, res.body)
	}
	status := func() map[string]any {
		t.Helper()
		res := e.call(admin, http.MethodGet, "/api/integrations/status", nil)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("status: %d\n%s", res.StatusCode, res.body)
		}
		return entry(t, envelopeData(t, res), "resend")
	}
	before := status()
	refuseAuditEntries(t, admin.orgID)

	replacement := resendKey()
	for _, tt := range []struct {
		name, method, target string
		body                 any
	}{
		{"save", http.MethodPost, "/api/integrations/resend", map[string]string{"apiKey": replacement}},
		{"test connection", http.MethodPost, "/api/integrations/resend/verify", nil},
		{"disconnect", http.MethodDelete, "/api/integrations/resend", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res := e.call(admin, tt.method, tt.target, tt.body)
			if res.StatusCode != http.StatusInternalServerError {
				t.Fatalf("%d, want 500\n%s", res.StatusCode, res.body)
			}
			if code := envelopeError(t, res)["code"]; code != "internal" {
				t.Errorf("code %v, want internal", code)
			}
			for _, s := range []string{"refused by the test", "audit_log", replacement, kept} {
				if strings.Contains(res.body, s) {
					t.Errorf("the answer tells %q:\n%s", s, res.body)
				}
			}
		})
	}
	// Still connected with the kept key, as verified when it was saved.
	if after := status(); !reflect.DeepEqual(after, before) || after["connected"] != true {
		t.Errorf("status after the refused changes: %v\nwant as before: %v", after, before)
	}
}
