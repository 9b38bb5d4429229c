package db_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"byoc/app"
	"byoc/db"
	"byoc/db/dbtest"
)

func callEventRows(t *testing.T, d *db.DB, orgID, dedupKey string) int {
	t.Helper()
	var n int
	if err := d.Pool.QueryRow(context.Background(),
		`select count(*) from call_events where org_id = $1 and dedup_key = $2`, orgID, dedupKey).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestRecordCallEvent(t *testing.T) {
	d := dbtest.DB(t)
	ctx := context.Background()
	org := dbtest.SeedOrg(t, "call events test")
	occurred := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	received := occurred.Add(2 * time.Second)
	dur := 42.5
	ev := app.CallEvent{OrgID: org, CallID: "call-1", Type: "end-of-call-report", EndedReason: "customer-ended-call",
		DurationSeconds: &dur, DedupKey: "k1", OccurredAt: &occurred, ReceivedAt: received}

	t.Run("first delivery inserts", func(t *testing.T) {
		ok, err := d.RecordCallEvent(ctx, ev)
		if err != nil || !ok {
			t.Fatalf("RecordCallEvent = %v, %v; want true, nil", ok, err)
		}
	})
	t.Run("same dedup key does not insert again", func(t *testing.T) {
		again := ev
		again.EndedReason = "something else"
		ok, err := d.RecordCallEvent(ctx, again)
		if err != nil || ok {
			t.Fatalf("RecordCallEvent = %v, %v; want false, nil", ok, err)
		}
		if n := callEventRows(t, d, org, "k1"); n != 1 {
			t.Fatalf("%d rows, want 1", n)
		}
	})
	t.Run("read back", func(t *testing.T) {
		got, err := d.CallEvents(ctx, org, 10)
		if err != nil || len(got) != 1 {
			t.Fatalf("CallEvents = %v, %v; want one event", got, err)
		}
		e := got[0]
		if e.OrgID != org || e.CallID != "call-1" || e.Type != "end-of-call-report" || e.Status != "" ||
			e.EndedReason != "customer-ended-call" || e.DurationSeconds == nil || *e.DurationSeconds != dur ||
			e.DedupKey != "k1" || e.OccurredAt == nil || !e.OccurredAt.Equal(occurred) || !e.ReceivedAt.Equal(received) {
			t.Errorf("read back %+v", e)
		}
	})
	t.Run("zero received time and no optional fields", func(t *testing.T) {
		before := time.Now().Add(-time.Minute)
		ok, err := d.RecordCallEvent(ctx, app.CallEvent{OrgID: org, CallID: "call-2", Type: "status-update",
			Status: "ringing", DedupKey: "k2"})
		if err != nil || !ok {
			t.Fatalf("RecordCallEvent = %v, %v", ok, err)
		}
		got, err := d.CallEvents(ctx, org, 1)
		if err != nil || len(got) != 1 {
			t.Fatalf("CallEvents = %v, %v", got, err)
		}
		e := got[0]
		if e.DedupKey != "k2" || e.Status != "ringing" || e.DurationSeconds != nil || e.OccurredAt != nil ||
			e.ReceivedAt.Before(before) {
			t.Errorf("newest event %+v", e)
		}
	})
	t.Run("the key is per org", func(t *testing.T) {
		other := dbtest.SeedOrg(t, "call events test")
		e := ev
		e.OrgID = other
		ok, err := d.RecordCallEvent(ctx, e)
		if err != nil || !ok {
			t.Fatalf("RecordCallEvent in another org = %v, %v; want true", ok, err)
		}
		got, err := d.CallEvents(ctx, other, 0)
		if err != nil || len(got) != 1 || got[0].OrgID != other {
			t.Fatalf("other org sees %v, %v; want only its own event", got, err)
		}
	})
	t.Run("invalid org", func(t *testing.T) {
		e := ev
		e.OrgID = "not-a-uuid"
		if _, err := d.RecordCallEvent(ctx, e); !errors.Is(err, db.ErrNoOrg) {
			t.Fatalf("err = %v, want ErrNoOrg", err)
		}
		if _, err := d.CallEvents(ctx, "", 5); !errors.Is(err, db.ErrNoOrg) {
			t.Fatalf("CallEvents err = %v, want ErrNoOrg", err)
		}
	})
}

// TestRecordCallEventConcurrent simulates one delivery reaching many
// instances at once: exactly one of them records it.
func TestRecordCallEventConcurrent(t *testing.T) {
	d := dbtest.DB(t)
	org := dbtest.SeedOrg(t, "call events test")
	var inserted atomic.Int32
	var wg sync.WaitGroup
	for range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := d.RecordCallEvent(context.Background(), app.CallEvent{OrgID: org, CallID: "c", Type: "status-update",
				Status: "ended", DedupKey: "same"})
			if err != nil {
				t.Error(err)
			}
			if ok {
				inserted.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := inserted.Load(); n != 1 {
		t.Errorf("%d callers inserted, want 1", n)
	}
	if n := callEventRows(t, d, org, "same"); n != 1 {
		t.Errorf("%d rows, want 1", n)
	}
}

func TestCallEventsOrderAndLimit(t *testing.T) {
	d := dbtest.DB(t)
	ctx := context.Background()
	org := dbtest.SeedOrg(t, "call events test")
	base := time.Date(2020, 3, 4, 5, 6, 7, 0, time.UTC)
	for i, key := range []string{"a", "b", "c"} {
		if _, err := d.RecordCallEvent(ctx, app.CallEvent{OrgID: org, CallID: "c", Type: "status-update",
			DedupKey: key, ReceivedAt: base.Add(time.Duration(i) * time.Second)}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := d.CallEvents(ctx, org, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].DedupKey != "c" || got[1].DedupKey != "b" {
		t.Fatalf("CallEvents(limit 2) = %+v; want c, b", got)
	}
	empty, err := d.CallEvents(ctx, dbtest.SeedOrg(t, "call events test"), 5)
	if err != nil || empty == nil || len(empty) != 0 {
		t.Fatalf("empty org: %v, %v; want an empty, non-nil slice", empty, err)
	}
}
