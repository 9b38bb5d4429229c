package google_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"byoc/app"
	"byoc/app/providers/google"
	"byoc/app/sandbox"
)

func booking(start time.Time) google.Booking {
	return google.Booking{Start: start, End: start.Add(30 * time.Minute), Summary: "Check-up", AttendeeEmail: "patient@example.com"}
}

func TestFreeBusy(t *testing.T) {
	h := newHarness(t)
	const email = "owner@example.com"
	h.connect(email)
	day := time.Date(2031, 3, 10, 0, 0, 0, 0, time.UTC)
	at := func(hour, minute int) time.Time {
		return day.Add(time.Duration(hour)*time.Hour + time.Duration(minute)*time.Minute)
	}
	for _, e := range []sandbox.GoogleEvent{
		{Summary: "overlapping A", Start: at(9, 0), End: at(10, 0)},
		{Summary: "overlapping B", Start: at(9, 30), End: at(10, 30)},
		{Summary: "touching", Start: at(10, 30), End: at(11, 0)},
		{Summary: "free time", Start: at(12, 0), End: at(13, 0), Transparency: "transparent"},
		{Summary: "cancelled", Start: at(14, 0), End: at(15, 0), Status: "cancelled"},
		{Summary: "before the window", Start: at(6, 0), End: at(8, 30)},
		{Summary: "after the window", Start: at(18, 0), End: at(19, 0)},
		{Summary: "all day next day", Start: day.AddDate(0, 0, 1), End: day.AddDate(0, 0, 2), AllDay: true},
	} {
		h.g.AddEvent(email, e)
	}

	got, err := h.svc.FreeBusy(context.Background(), h.org, at(8, 0), at(17, 0))
	if h.note(err) != nil {
		t.Fatal(err)
	}
	want := []google.Busy{{Start: at(8, 0), End: at(8, 30)}, {Start: at(9, 0), End: at(11, 0)}}
	if !sameBusy(got, want) {
		t.Fatalf("FreeBusy = %v, want %v", got, want)
	}

	t.Run("all-day events block the whole day", func(t *testing.T) {
		got, err := h.svc.FreeBusy(context.Background(), h.org, day.AddDate(0, 0, 1).Add(9*time.Hour), day.AddDate(0, 0, 1).Add(17*time.Hour))
		if h.note(err) != nil {
			t.Fatal(err)
		}
		want := []google.Busy{{Start: day.AddDate(0, 0, 1).Add(9 * time.Hour), End: day.AddDate(0, 0, 1).Add(17 * time.Hour)}}
		if !sameBusy(got, want) {
			t.Fatalf("FreeBusy = %v, want %v", got, want)
		}
	})

	t.Run("many events are read across pages", func(t *testing.T) {
		base := time.Date(2032, 1, 1, 0, 0, 0, 0, time.UTC)
		for i := range 300 {
			s := base.Add(time.Duration(i) * time.Hour)
			h.g.AddEvent(email, sandbox.GoogleEvent{Summary: "slot", Start: s, End: s.Add(30 * time.Minute)})
		}
		got, err := h.svc.FreeBusy(context.Background(), h.org, base, base.Add(400*time.Hour))
		if h.note(err) != nil || len(got) != 300 {
			t.Fatalf("FreeBusy = %d spans, %v; want 300", len(got), err)
		}
	})

	t.Run("bad periods", func(t *testing.T) {
		for name, p := range map[string][2]time.Time{
			"no start":       {{}, at(9, 0)},
			"end before":     {at(9, 0), at(8, 0)},
			"empty":          {at(9, 0), at(9, 0)},
			"more than span": {at(9, 0), at(9, 0).Add(google.MaxFreeBusySpan + time.Hour)},
		} {
			_, err := h.svc.FreeBusy(context.Background(), h.org, p[0], p[1])
			if app.ErrorCode(h.note(err)) != app.EValidation || len(app.ErrorFields(err)) == 0 {
				t.Errorf("%s: %v; want a validation error with fields", name, err)
			}
		}
	})
}

func sameBusy(a, b []google.Busy) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].Start.Equal(b[i].Start) || !a[i].End.Equal(b[i].End) {
			return false
		}
	}
	return true
}

func TestBook(t *testing.T) {
	h := newHarness(t)
	const email = "owner@example.com"
	h.connect(email)
	ctx := context.Background()
	start := time.Date(2031, 4, 2, 15, 0, 0, 0, time.FixedZone("CEST", 2*3600))

	id, link, err := h.svc.Book(ctx, h.org, booking(start))
	if h.note(err) != nil || id == "" || link == "" {
		t.Fatalf("Book = %q, %q, %v", id, link, err)
	}
	evs := h.g.Events(email)
	if len(evs) != 1 || evs[0].ID != id || evs[0].Summary != "Check-up" || !evs[0].Start.Equal(start) ||
		!evs[0].End.Equal(start.Add(30*time.Minute)) || !reflect.DeepEqual(evs[0].Attendees, []string{"patient@example.com"}) {
		t.Fatalf("calendar holds %+v", evs)
	}
	busy, err := h.svc.FreeBusy(ctx, h.org, start.Add(-time.Hour), start.Add(time.Hour))
	if h.note(err) != nil || len(busy) != 1 || !busy[0].Start.Equal(start) {
		t.Fatalf("FreeBusy after booking = %v, %v", busy, err)
	}

	t.Run("without an attendee", func(t *testing.T) {
		b := booking(start.Add(2 * time.Hour))
		b.AttendeeEmail = ""
		if _, _, err := h.svc.Book(ctx, h.org, b); h.note(err) != nil {
			t.Fatal(err)
		}
	})

	t.Run("bad input", func(t *testing.T) {
		for name, change := range map[string]func(*google.Booking){
			"no start":        func(b *google.Booking) { b.Start = time.Time{} },
			"end before":      func(b *google.Booking) { b.End = b.Start.Add(-time.Minute) },
			"no title":        func(b *google.Booking) { b.Summary = "  " },
			"bad attendee":    func(b *google.Booking) { b.AttendeeEmail = "not an email" },
			"named attendee":  func(b *google.Booking) { b.AttendeeEmail = "Pat <pat@example.com>" },
			"huge descripton": func(b *google.Booking) { b.Description = string(make([]byte, 9000)) },
		} {
			b := booking(start)
			change(&b)
			_, _, err := h.svc.Book(ctx, h.org, b)
			if app.ErrorCode(h.note(err)) != app.EValidation || len(app.ErrorFields(err)) == 0 {
				t.Errorf("%s: %v; want a validation error with fields", name, err)
			}
		}
		if n := len(h.g.Events(email)); n != 2 {
			t.Fatalf("%d events after refused bookings, want 2", n)
		}
	})

	t.Run("org without a calendar", func(t *testing.T) {
		other, _ := h.seedOrg(app.RoleAdmin)
		_, _, err := h.svc.Book(ctx, other, booking(start))
		wantCode(t, h.note(err), app.ENotConfigured, "No Google Calendar credentials")
		_, err = h.svc.FreeBusy(ctx, other, start, start.Add(time.Hour))
		wantCode(t, h.note(err), app.ENotConfigured, "No Google Calendar credentials")
	})
}
