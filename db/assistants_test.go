package db_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"sync"
	"testing"
	"time"

	"byoc/app"
	"byoc/db"
	"byoc/db/dbtest"
)

// asstID returns an assistant id no other test uses.
func asstID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "asst-" + hex.EncodeToString(b[:])
}

func asstSave(t *testing.T, d *db.DB, orgID, id string, role app.AssistantRole, name string) {
	t.Helper()
	if err := d.SaveAssistantMapping(context.Background(),
		app.AssistantMapping{VapiAssistantID: id, OrgID: orgID, Role: role, Name: name}); err != nil {
		t.Fatal(err)
	}
}

func TestSaveAssistantMappingUpsertsPerRole(t *testing.T) {
	d := dbtest.DB(t)
	ctx := context.Background()
	org := dbtest.SeedOrg(t, "assistants test")

	got, err := d.AssistantMappings(ctx, org)
	if err != nil || got == nil || len(got) != 0 {
		t.Fatalf("before any save: %v, %v; want an empty, non-nil slice", got, err)
	}

	in1, out1 := asstID(), asstID()
	asstSave(t, d, org, out1, app.Outbound, "Acme Outbound")
	asstSave(t, d, org, in1, app.Inbound, "Acme Inbound")
	got, err = d.AssistantMappings(ctx, org)
	if err != nil || len(got) != 2 {
		t.Fatalf("after two saves: %+v, %v", got, err)
	}
	if got[0].Role != app.Inbound || got[0].VapiAssistantID != in1 || got[0].Name != "Acme Inbound" || got[0].OrgID != org ||
		got[1].Role != app.Outbound || got[1].VapiAssistantID != out1 || got[1].Name != "Acme Outbound" ||
		got[0].CreatedAt.IsZero() || got[0].LastUsedAt != nil {
		t.Fatalf("mappings = %+v, want inbound first", got)
	}
	firstCreated := got[0].CreatedAt

	// Saving the same assistant again keeps its creation time.
	asstSave(t, d, org, in1, app.Inbound, "Acme Inbound renamed")
	got, _ = d.AssistantMappings(ctx, org)
	if got[0].VapiAssistantID != in1 || got[0].Name != "Acme Inbound renamed" || !got[0].CreatedAt.Equal(firstCreated) {
		t.Fatalf("resaving the same assistant: %+v", got[0])
	}

	// Another assistant for a role replaces the old one: still one per role.
	in2 := asstID()
	asstSave(t, d, org, in2, app.Inbound, "")
	got, _ = d.AssistantMappings(ctx, org)
	if len(got) != 2 || got[0].VapiAssistantID != in2 || got[0].Name != "" || got[1].VapiAssistantID != out1 {
		t.Fatalf("after replacing the inbound assistant: %+v", got)
	}
	if _, err := d.ResolveAssistant(ctx, in1); app.ErrorCode(err) != app.ENotFound {
		t.Fatalf("the replaced assistant still resolves: %v", err)
	}
}

func TestSaveAssistantMappingOfAnotherOrgConflicts(t *testing.T) {
	d := dbtest.DB(t)
	ctx := context.Background()
	orgA, orgB := dbtest.SeedOrg(t, "assistants test"), dbtest.SeedOrg(t, "assistants test")
	id := asstID()
	asstSave(t, d, orgA, id, app.Inbound, "A Inbound")

	err := d.SaveAssistantMapping(ctx, app.AssistantMapping{VapiAssistantID: id, OrgID: orgB, Role: app.Inbound, Name: "B Inbound"})
	if app.ErrorCode(err) != app.EConflict {
		t.Fatalf("mapping org A's assistant to org B: %v, want %s", err, app.EConflict)
	}
	if got, _ := d.AssistantMappings(ctx, orgB); len(got) != 0 {
		t.Errorf("org B got mappings %+v", got)
	}
	m, err := d.ResolveAssistant(ctx, id)
	if err != nil || m.OrgID != orgA || m.Name != "A Inbound" {
		t.Errorf("the assistant resolves to %+v, %v; want org A unchanged", m, err)
	}
}

func TestResolveAssistant(t *testing.T) {
	d := dbtest.DB(t)
	ctx := context.Background()
	orgA, orgB := dbtest.SeedOrg(t, "assistants test"), dbtest.SeedOrg(t, "assistants test")
	idA, idB := asstID(), asstID()
	asstSave(t, d, orgA, idA, app.Inbound, "A Inbound")
	asstSave(t, d, orgB, idB, app.Outbound, "B Outbound")

	tests := []struct {
		name     string
		id       string
		wantOrg  string
		wantRole app.AssistantRole
		wantCode string
	}{
		{"org A's assistant", idA, orgA, app.Inbound, ""},
		{"org B's assistant", idB, orgB, app.Outbound, ""},
		{"unknown assistant", asstID(), "", "", app.ENotFound},
		{"empty id", "", "", "", app.ENotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := d.ResolveAssistant(ctx, tt.id)
			if app.ErrorCode(err) != tt.wantCode {
				t.Fatalf("err = %v, want code %q", err, tt.wantCode)
			}
			if tt.wantCode == "" && (m.OrgID != tt.wantOrg || m.Role != tt.wantRole || m.VapiAssistantID != tt.id) {
				t.Errorf("resolved %+v", m)
			}
		})
	}

	// Tenant reads stay within the org: org B does not list org A's mapping.
	got, err := d.AssistantMappings(ctx, orgB)
	if err != nil || len(got) != 1 || got[0].VapiAssistantID != idB {
		t.Errorf("org B's mappings = %+v, %v", got, err)
	}
}

func TestTouchAssistantAtMostOnceAMinute(t *testing.T) {
	d := dbtest.DB(t)
	ctx := context.Background()
	org := dbtest.SeedOrg(t, "assistants test")
	id := asstID()
	asstSave(t, d, org, id, app.Inbound, "")
	t0 := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

	steps := []struct {
		name      string
		at        time.Time
		wantWrite bool
		wantLast  time.Time
	}{
		{"first use", t0, true, t0},
		{"30 seconds later", t0.Add(30 * time.Second), false, t0},
		{"exactly a minute later", t0.Add(time.Minute), false, t0},
		{"61 seconds later", t0.Add(61 * time.Second), true, t0.Add(61 * time.Second)},
		{"an older time", t0, false, t0.Add(61 * time.Second)},
	}
	for _, s := range steps {
		wrote, err := d.TouchAssistant(ctx, org, id, s.at)
		if err != nil || wrote != s.wantWrite {
			t.Fatalf("%s: wrote = %v, %v; want %v", s.name, wrote, err, s.wantWrite)
		}
		m, err := d.ResolveAssistant(ctx, id)
		if err != nil || m.LastUsedAt == nil || !m.LastUsedAt.Equal(s.wantLast) {
			t.Fatalf("%s: last used = %v, %v; want %v", s.name, m.LastUsedAt, err, s.wantLast)
		}
	}
	if wrote, err := d.TouchAssistant(ctx, org, asstID(), t0); err != nil || wrote {
		t.Errorf("touching an unknown assistant: %v, %v; want no write and no error", wrote, err)
	}
}

// TestTouchAssistantStaysInItsOrg: the update runs as the org it is given,
// so another org's assistant is never written, whatever id is named.
func TestTouchAssistantStaysInItsOrg(t *testing.T) {
	d := dbtest.DB(t)
	ctx := context.Background()
	owner, other := dbtest.SeedOrg(t, "assistants test"), dbtest.SeedOrg(t, "assistants test")
	id := asstID()
	asstSave(t, d, owner, id, app.Inbound, "")
	at := time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC)

	if wrote, err := d.TouchAssistant(ctx, other, id, at); err != nil || wrote {
		t.Fatalf("another org touching the assistant: wrote = %v, %v; want false, nil", wrote, err)
	}
	if m, err := d.ResolveAssistant(ctx, id); err != nil || m.LastUsedAt != nil {
		t.Fatalf("last used = %v, %v after another org's touch; want unset", m.LastUsedAt, err)
	}
	if _, err := d.TouchAssistant(ctx, "not-a-uuid", id, at); !errors.Is(err, db.ErrNoOrg) {
		t.Errorf("invalid org: err = %v, want ErrNoOrg", err)
	}
	if wrote, err := d.TouchAssistant(ctx, owner, id, at); err != nil || !wrote {
		t.Fatalf("the owner touching its assistant: wrote = %v, %v; want true", wrote, err)
	}
}

func TestDeleteAssistantMappings(t *testing.T) {
	d := dbtest.DB(t)
	ctx := context.Background()
	orgA, orgB := dbtest.SeedOrg(t, "assistants test"), dbtest.SeedOrg(t, "assistants test")
	in, out, other := asstID(), asstID(), asstID()
	asstSave(t, d, orgA, in, app.Inbound, "")
	asstSave(t, d, orgA, out, app.Outbound, "")
	asstSave(t, d, orgB, other, app.Inbound, "")

	ids, err := d.DeleteAssistantMappings(ctx, orgA)
	if err != nil || len(ids) != 2 || !((ids[0] == in && ids[1] == out) || (ids[0] == out && ids[1] == in)) {
		t.Fatalf("deleted %v, %v; want %s and %s", ids, err, in, out)
	}
	if got, _ := d.AssistantMappings(ctx, orgA); len(got) != 0 {
		t.Errorf("org A still has %+v", got)
	}
	if _, err := d.ResolveAssistant(ctx, in); app.ErrorCode(err) != app.ENotFound {
		t.Errorf("a deleted assistant resolves: %v", err)
	}
	if m, err := d.ResolveAssistant(ctx, other); err != nil || m.OrgID != orgB {
		t.Errorf("org B's mapping: %+v, %v", m, err)
	}
	ids, err = d.DeleteAssistantMappings(ctx, orgA)
	if err != nil || len(ids) != 0 {
		t.Errorf("deleting again: %v, %v; want nothing", ids, err)
	}
}

func TestOutboundAgent(t *testing.T) {
	d := dbtest.DB(t)
	ctx := context.Background()
	org, other := dbtest.SeedOrg(t, "assistants test"), dbtest.SeedOrg(t, "assistants test")

	if _, err := d.OutboundAgent(ctx, org); app.ErrorCode(err) != app.ENotFound {
		t.Fatalf("before any save: %v, want %s", err, app.ENotFound)
	}
	// Clearing without a row is harmless.
	if err := d.ClearOutboundAssistant(ctx, org); err != nil {
		t.Fatal(err)
	}

	steps := []struct {
		name      string
		save      *app.OutboundAgent
		clear     bool
		wantAsst  string
		wantPhone string
	}{
		{name: "phone only", save: &app.OutboundAgent{PhoneNumber: "+12025550123"}, wantPhone: "+12025550123"},
		{name: "assistant merged in", save: &app.OutboundAgent{VapiAssistantID: "asst-1"}, wantAsst: "asst-1", wantPhone: "+12025550123"},
		{name: "both replaced", save: &app.OutboundAgent{VapiAssistantID: "asst-2", PhoneNumber: "+447911123456"},
			wantAsst: "asst-2", wantPhone: "+447911123456"},
		{name: "empty save changes nothing", save: &app.OutboundAgent{}, wantAsst: "asst-2", wantPhone: "+447911123456"},
		{name: "assistant cleared, phone kept", clear: true, wantPhone: "+447911123456"},
		{name: "assistant set again", save: &app.OutboundAgent{VapiAssistantID: "asst-3"}, wantAsst: "asst-3", wantPhone: "+447911123456"},
	}
	var lastUpdate time.Time
	for _, s := range steps {
		if s.clear {
			if err := d.ClearOutboundAssistant(ctx, org); err != nil {
				t.Fatal(err)
			}
		} else {
			a := *s.save
			a.OrgID = org
			if err := d.SaveOutboundAgent(ctx, a); err != nil {
				t.Fatal(err)
			}
		}
		got, err := d.OutboundAgent(ctx, org)
		if err != nil || got.OrgID != org || got.VapiAssistantID != s.wantAsst || got.PhoneNumber != s.wantPhone {
			t.Fatalf("%s: %+v, %v; want assistant %q, phone %q", s.name, got, err, s.wantAsst, s.wantPhone)
		}
		if got.UpdatedAt.Before(lastUpdate) {
			t.Errorf("%s: updated_at went back from %v to %v", s.name, lastUpdate, got.UpdatedAt)
		}
		lastUpdate = got.UpdatedAt
	}
	if _, err := d.OutboundAgent(ctx, other); app.ErrorCode(err) != app.ENotFound {
		t.Errorf("another org sees an outbound agent: %v", err)
	}
}

func TestWithOrgLock(t *testing.T) {
	d := dbtest.DB(t)
	ctx := context.Background()
	orgA, orgB := dbtest.SeedOrg(t, "assistants test"), dbtest.SeedOrg(t, "assistants test")

	t.Run("same org and name are serialized", func(t *testing.T) {
		const hold = 300 * time.Millisecond
		entered := make(chan struct{})
		var mu sync.Mutex
		var firstEnd, secondStart time.Time
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			err := d.WithOrgLock(ctx, orgA, "test", func(context.Context) error {
				close(entered)
				time.Sleep(hold)
				mu.Lock()
				firstEnd = time.Now()
				mu.Unlock()
				return nil
			})
			if err != nil {
				t.Error(err)
			}
		}()
		go func() {
			defer wg.Done()
			<-entered
			err := d.WithOrgLock(ctx, orgA, "test", func(context.Context) error {
				mu.Lock()
				secondStart = time.Now()
				mu.Unlock()
				return nil
			})
			if err != nil {
				t.Error(err)
			}
		}()
		wg.Wait()
		if secondStart.Before(firstEnd) {
			t.Errorf("the second caller entered at %v, before the first left at %v", secondStart, firstEnd)
		}
	})

	t.Run("different orgs or names run at once", func(t *testing.T) {
		for _, other := range []struct{ org, name string }{{orgB, "test"}, {orgA, "other"}} {
			entered := make(chan struct{})
			release := make(chan struct{})
			done := make(chan error, 1)
			go func() {
				done <- d.WithOrgLock(ctx, orgA, "test", func(context.Context) error {
					close(entered)
					select {
					case <-release:
						return nil
					case <-time.After(5 * time.Second):
						return errors.New("the other caller never ran while the lock was held")
					}
				})
			}()
			<-entered
			err := d.WithOrgLock(ctx, other.org, other.name, func(context.Context) error {
				close(release)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := <-done; err != nil {
				t.Errorf("org %s, lock %q: %v", other.org, other.name, err)
			}
		}
	})

	t.Run("released after an error and a cancelled wait", func(t *testing.T) {
		boom := errors.New("boom")
		if err := d.WithOrgLock(ctx, orgA, "test", func(context.Context) error { return boom }); !errors.Is(err, boom) {
			t.Fatalf("err = %v, want fn's error", err)
		}
		// A holder keeps the lock; a waiter gives up when its context ends.
		entered, release := make(chan struct{}), make(chan struct{})
		done := make(chan error, 1)
		go func() {
			done <- d.WithOrgLock(ctx, orgA, "test", func(context.Context) error {
				close(entered)
				<-release
				return nil
			})
		}()
		<-entered
		wctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		err := d.WithOrgLock(wctx, orgA, "test", func(context.Context) error {
			t.Error("ran while another caller held the lock")
			return nil
		})
		cancel()
		if err == nil {
			t.Error("waiting past the deadline returned no error")
		}
		close(release)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		// Free again: a plain call gets it at once.
		qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if err := d.WithOrgLock(qctx, orgA, "test", func(context.Context) error { return nil }); err != nil {
			t.Errorf("the lock was not released: %v", err)
		}
	})
}
