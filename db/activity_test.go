package db_test

import (
	"context"
	"testing"
	"time"

	"byoc/app"
	"byoc/db"
	"byoc/db/dbtest"
)

func TestAddRefusals(t *testing.T) {
	d := dbtest.DB(t)
	ctx := context.Background()
	org := dbtest.SeedOrg(t, "refusals test")
	now := time.Now().UTC()
	hour := now.Truncate(time.Hour)
	tallies := []app.RefusalTally{
		{OrgID: org, AssistantID: "a1", Reason: app.RefusalBadSignature, Hour: hour, Count: 3},
		{OrgID: org, AssistantID: "a1", Reason: app.RefusalBadSignature, Hour: hour, Count: 2}, // the same counter twice
		{OrgID: org, AssistantID: "a1", Reason: app.RefusalStaleTimestamp, Hour: hour.Add(-time.Hour), Count: 1},
		{OrgID: org, AssistantID: "old", Reason: app.RefusalBadSignature, Hour: hour.Add(-db.RefusalRetention - time.Hour), Count: 9},
		// An org that no longer exists: dropped, not an error.
		{OrgID: "00000000-0000-4000-8000-000000000000", AssistantID: "a1", Reason: app.RefusalBadSignature, Hour: hour, Count: 1},
	}
	if err := d.AddRefusals(ctx, tallies); err != nil {
		t.Fatal(err)
	}
	if err := d.AddRefusals(ctx, tallies[:1]); err != nil {
		t.Fatal(err)
	}
	got, err := d.RefusalCounts(ctx, org, now.Add(-24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"a1/" + app.RefusalBadSignature: 8, "a1/" + app.RefusalStaleTimestamp: 1}
	if len(got) != len(want) {
		t.Fatalf("counts %+v, want %v", got, want)
	}
	for _, c := range got {
		if want[c.AssistantID+"/"+c.Reason] != c.Count {
			t.Errorf("count %+v, want %v", c, want)
		}
	}
	var old int
	if err := d.Pool.QueryRow(ctx, `select count(*) from webhook_refusals where assistant_id = 'old'`).Scan(&old); err != nil || old != 0 {
		t.Fatalf("%d rows older than the retention kept (%v)", old, err)
	}
	// The window counts whole hours from the one since falls in: an hour
	// before it is not summed, whatever the time of day.
	got, err = d.RefusalCounts(ctx, org, hour.Add(time.Minute))
	if err != nil || len(got) != 1 || got[0].Count != 8 {
		t.Fatalf("counts since this hour %+v, %v", got, err)
	}
}

func TestAuditPageAndDeliveries(t *testing.T) {
	d := dbtest.DB(t)
	ctx := context.Background()
	org, other := dbtest.SeedOrg(t, "audit page test"), dbtest.SeedOrg(t, "audit page other")
	for i, p := range []app.Provider{app.Resend, app.Twilio, app.Resend} {
		if err := d.AppendAudit(ctx, app.AuditEntry{OrgID: org, Action: "credentials.save", Provider: p,
			Outcome: app.OutcomeSuccess, Detail: string(rune('a' + i))}); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.AppendAudit(ctx, app.AuditEntry{OrgID: other, Action: "credentials.save", Provider: app.Resend,
		Outcome: app.OutcomeSuccess}); err != nil {
		t.Fatal(err)
	}
	all, err := d.AuditPage(ctx, app.AuditQuery{OrgID: org, Limit: 10})
	if err != nil || len(all) != 3 || all[0].Detail != "c" || all[2].Detail != "a" || all[0].ActorEmail != "" {
		t.Fatalf("page %+v, %v", all, err)
	}
	resend, err := d.AuditPage(ctx, app.AuditQuery{OrgID: org, Provider: app.Resend, Limit: 10})
	if err != nil || len(resend) != 2 {
		t.Fatalf("resend %+v, %v", resend, err)
	}
	after, err := d.AuditPage(ctx, app.AuditQuery{OrgID: org, Before: &app.Position{At: all[0].At, ID: all[0].ID}, Limit: 10})
	if err != nil || len(after) != 2 || after[0].ID != all[1].ID {
		t.Fatalf("after the first %+v, %v", after, err)
	}
	// A position far in the future reaches only the org's own rows.
	future, err := d.AuditPage(ctx, app.AuditQuery{OrgID: org, Before: &app.Position{At: time.Now().Add(time.Hour), ID: 1 << 60}, Limit: 10})
	if err != nil || len(future) != 3 {
		t.Fatalf("from the future %+v, %v", future, err)
	}

	if _, err := d.RecordCallEvent(ctx, app.CallEvent{OrgID: org, CallID: "c1", Type: "status-update", DedupKey: "k1",
		AssistantID: "asst-1"}); err != nil {
		t.Fatal(err)
	}
	if inserted, err := d.RecordCallEvent(ctx, app.CallEvent{OrgID: org, CallID: "c1", Type: "status-update", DedupKey: "k1"}); err != nil || inserted {
		t.Fatalf("repeat inserted %v, %v", inserted, err)
	}
	if err := d.SetCallEventOutcome(ctx, org, "k1", app.DeliveryToolsFailed); err != nil {
		t.Fatal(err)
	}
	ds, err := d.Deliveries(ctx, org, nil, 10)
	if err != nil || len(ds) != 1 || ds[0].Duplicates != 1 || ds[0].Outcome != app.DeliveryToolsFailed || ds[0].AssistantID != "asst-1" {
		t.Fatalf("deliveries %+v, %v", ds, err)
	}
	if ds, err := d.Deliveries(ctx, other, nil, 10); err != nil || len(ds) != 0 {
		t.Fatalf("the other org's deliveries %+v, %v", ds, err)
	}
	at, ok, err := d.LastDelivery(ctx, org)
	if err != nil || !ok || !at.Equal(ds[0].ReceivedAt) {
		t.Fatalf("last delivery %v %v %v", at, ok, err)
	}
	if _, ok, err := d.LastDelivery(ctx, other); err != nil || ok {
		t.Fatalf("the other org's last delivery: %v %v", ok, err)
	}
}
