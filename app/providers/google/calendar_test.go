package google_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"byoc/app"
	"byoc/app/apptest"
	"byoc/app/providers/google"
	"byoc/app/sandbox"
	"byoc/db/dbtest"
)

func booking(start time.Time) app.Booking {
	return app.Booking{Start: start, End: start.Add(30 * time.Minute), Summary: "Check-up", AttendeeEmail: "patient@example.com"}
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

	got, err := h.cal.FreeBusy(context.Background(), h.org, at(8, 0), at(17, 0))
	if h.note(err) != nil {
		t.Fatal(err)
	}
	want := []app.Busy{{Start: at(8, 0), End: at(8, 30)}, {Start: at(9, 0), End: at(11, 0)}}
	if !sameBusy(got, want) {
		t.Fatalf("FreeBusy = %v, want %v", got, want)
	}

	t.Run("all-day events block the whole day", func(t *testing.T) {
		got, err := h.cal.FreeBusy(context.Background(), h.org, day.AddDate(0, 0, 1).Add(9*time.Hour), day.AddDate(0, 0, 1).Add(17*time.Hour))
		if h.note(err) != nil {
			t.Fatal(err)
		}
		want := []app.Busy{{Start: day.AddDate(0, 0, 1).Add(9 * time.Hour), End: day.AddDate(0, 0, 1).Add(17 * time.Hour)}}
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
		got, err := h.cal.FreeBusy(context.Background(), h.org, base, base.Add(400*time.Hour))
		if h.note(err) != nil || len(got) != 300 {
			t.Fatalf("FreeBusy = %d spans, %v; want 300", len(got), err)
		}
	})

	t.Run("bad periods", func(t *testing.T) {
		for name, p := range map[string][2]time.Time{
			"no start":       {{}, at(9, 0)},
			"end before":     {at(9, 0), at(8, 0)},
			"empty":          {at(9, 0), at(9, 0)},
			"more than span": {at(9, 0), at(9, 0).Add(app.MaxFreeBusySpan + time.Hour)},
		} {
			_, err := h.cal.FreeBusy(context.Background(), h.org, p[0], p[1])
			if app.ErrorCode(h.note(err)) != app.EValidation || len(app.ErrorFields(err)) == 0 {
				t.Errorf("%s: %v; want a validation error with fields", name, err)
			}
		}
	})
}

func sameBusy(a, b []app.Busy) bool {
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

	id, link, err := h.cal.Book(ctx, h.org, booking(start))
	if h.note(err) != nil || id == "" || link == "" {
		t.Fatalf("Book = %q, %q, %v", id, link, err)
	}
	evs := h.g.Events(email)
	if len(evs) != 1 || evs[0].ID != id || evs[0].Summary != "Check-up" || !evs[0].Start.Equal(start) ||
		!evs[0].End.Equal(start.Add(30*time.Minute)) || !reflect.DeepEqual(evs[0].Attendees, []string{"patient@example.com"}) {
		t.Fatalf("calendar holds %+v", evs)
	}
	busy, err := h.cal.FreeBusy(ctx, h.org, start.Add(-time.Hour), start.Add(time.Hour))
	if h.note(err) != nil || len(busy) != 1 || !busy[0].Start.Equal(start) {
		t.Fatalf("FreeBusy after booking = %v, %v", busy, err)
	}

	t.Run("without an attendee", func(t *testing.T) {
		b := booking(start.Add(2 * time.Hour))
		b.AttendeeEmail = ""
		if _, _, err := h.cal.Book(ctx, h.org, b); h.note(err) != nil {
			t.Fatal(err)
		}
	})

	t.Run("bad input", func(t *testing.T) {
		for name, change := range map[string]func(*app.Booking){
			"no start":        func(b *app.Booking) { b.Start = time.Time{} },
			"end before":      func(b *app.Booking) { b.End = b.Start.Add(-time.Minute) },
			"no title":        func(b *app.Booking) { b.Summary = "  " },
			"bad attendee":    func(b *app.Booking) { b.AttendeeEmail = "not an email" },
			"named attendee":  func(b *app.Booking) { b.AttendeeEmail = "Pat <pat@example.com>" },
			"huge descripton": func(b *app.Booking) { b.Description = string(make([]byte, 9000)) },
		} {
			b := booking(start)
			change(&b)
			_, _, err := h.cal.Book(ctx, h.org, b)
			if app.ErrorCode(h.note(err)) != app.EValidation || len(app.ErrorFields(err)) == 0 {
				t.Errorf("%s: %v; want a validation error with fields", name, err)
			}
		}
		if n := len(h.g.Events(email)); n != 2 {
			t.Fatalf("%d events after refused bookings, want 2", n)
		}
	})

	t.Run("org without a calendar", func(t *testing.T) {
		other := dbtest.SeedOrg(t, "calendarless")
		_, _, err := h.cal.Book(ctx, other, booking(start))
		wantCode(t, h.note(err), app.ENotConfigured, "No Google Calendar credentials")
		_, err = h.cal.FreeBusy(ctx, other, start, start.Add(time.Hour))
		wantCode(t, h.note(err), app.ENotConfigured, "No Google Calendar credentials")
		_, err = h.cal.Check(ctx, other)
		wantCode(t, h.note(err), app.ENotConfigured, "No Google Calendar credentials")
	})
}

func TestAccessTokenRejectedEarlyIsRefreshed(t *testing.T) {
	h := newHarness(t)
	const email = "owner@example.com"
	old := h.connect(email)
	h.g.ExpireAccessTokens(email) // Google drops it before its announced expiry

	if _, err := h.cal.FreeBusy(context.Background(), h.org, time.Now(), time.Now().Add(time.Hour)); h.note(err) != nil {
		t.Fatal(err)
	}
	if n := h.g.Refreshes(email); n != 1 {
		t.Fatalf("%d refreshes, want 1", n)
	}
	if h.stored().AccessToken.Reveal() == old.AccessToken.Reveal() {
		t.Fatal("the refreshed token was not persisted")
	}
}

func TestInvalidGrantNeedsReconnect(t *testing.T) {
	h := newHarness(t)
	const email = "owner@example.com"
	h.connect(email)
	h.g.RevokeGrants(email) // the user removed the app's access at Google
	h.clock.Advance(2 * time.Hour)

	_, err := h.cal.FreeBusy(context.Background(), h.org, time.Now(), time.Now().Add(time.Hour))
	wantCode(t, h.note(err), app.EVerificationFailed, reconnectMessage)
	if app.ErrorReason(err) != app.ReasonReconnect {
		t.Errorf("reason %q, want %q", app.ErrorReason(err), app.ReasonReconnect)
	}

	st := h.status()
	if !st.Connected || !st.NeedsAttention || st.VerificationError != reconnectMessage ||
		st.VerificationCode != app.ReasonReconnect || !st.ReconnectNeeded() {
		t.Fatalf("status %+v; want connected, needing attention, with the reconnect message and code", st)
	}

	_, _, err = h.cal.Book(context.Background(), h.org, booking(time.Now()))
	wantCode(t, h.note(err), app.EVerificationFailed, reconnectMessage)
	_, err = h.cal.Check(context.Background(), h.org)
	wantCode(t, h.note(err), app.EVerificationFailed, reconnectMessage)
}

func TestCheck(t *testing.T) {
	ctx := context.Background()

	t.Run("reads the primary calendar and records nothing", func(t *testing.T) {
		h := newHarness(t)
		h.connect("owner@example.com")
		before := h.status()
		h.clock.Advance(5 * time.Minute)
		v, err := h.cal.Check(ctx, h.org)
		if h.note(err) != nil || v.Detail == "" || v.Limited {
			t.Fatalf("Check = %+v, %v", v, err)
		}
		if after := h.status(); !reflect.DeepEqual(after, before) {
			t.Errorf("status changed: %+v -> %+v", before, after)
		}
	})

	t.Run("a refresh cures an early 401", func(t *testing.T) {
		h := newHarness(t)
		h.connect("owner@example.com")
		h.g.ExpireAccessTokens("owner@example.com")
		if _, err := h.cal.Check(ctx, h.org); h.note(err) != nil {
			t.Fatal(err)
		}
		if n := h.g.Refreshes("owner@example.com"); n != 1 {
			t.Errorf("%d refreshes, want 1", n)
		}
	})

	t.Run("a grant without the calendar scope", func(t *testing.T) {
		h := newHarness(t)
		tok := h.grant(sandbox.GoogleConsentChoice{Untick: []string{google.ScopeEvents}})
		h.tap.add(tok.AccessToken.Reveal(), tok.RefreshToken.Reveal())
		h.store(h.org, app.GoogleCalendarConfig{RefreshToken: tok.RefreshToken, AccessToken: tok.AccessToken,
			Expiry: tok.Expiry, Email: sandbox.GoogleDefaultEmail, Scopes: tok.Scopes})
		_, err := h.cal.Check(ctx, h.org)
		wantCode(t, h.note(err), app.EVerificationFailed, "Google Calendar refused access (403 Forbidden)")
		if app.ErrorReason(err) != "" {
			t.Errorf("reason %q, want none", app.ErrorReason(err))
		}
	})

	t.Run("Google unreachable", func(t *testing.T) {
		h := newHarness(t)
		h.connect("owner@example.com")
		cfg := h.oauthConfig()
		cfg.CalendarBaseURL = apptest.ClosedURL(t) + "/calendar/v3"
		_, err := h.newCalendar(cfg).Check(ctx, h.org)
		wantCode(t, h.note(err), app.EProviderUnavailable, "Google Calendar could not be reached (connection refused)")
	})

	t.Run("server without a client", func(t *testing.T) {
		h := newHarness(t)
		h.connect("owner@example.com")
		cfg := h.oauthConfig()
		cfg.ClientID, cfg.ClientSecret = "", app.Secret{}
		cal := h.newCalendar(cfg)
		_, err := cal.Check(ctx, h.org)
		wantCode(t, h.note(err), app.ENotConfigured, "Google Calendar is not set up on this server.")
		_, err = cal.FreeBusy(ctx, h.org, time.Now(), time.Now().Add(time.Hour))
		wantCode(t, h.note(err), app.ENotConfigured, "Google Calendar is not set up on this server.")
		_, _, err = cal.Book(ctx, h.org, booking(time.Now()))
		wantCode(t, h.note(err), app.ENotConfigured, "Google Calendar is not set up on this server.")
	})
}

// fakeGrants hands out access tokens "token-1", "token-2", ... and records
// what the Calendar client asks and reports.
type fakeGrants struct {
	mu       sync.Mutex
	err      error
	rejected []string // the rejected token of each request
	refused  []error
}

func (f *fakeGrants) GoogleAccessToken(_ context.Context, orgID, rejected string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if orgID != "org-1" {
		return "", fmt.Errorf("asked for org %q", orgID)
	}
	if f.err != nil {
		return "", f.err
	}
	f.rejected = append(f.rejected, rejected)
	return fmt.Sprintf("token-%d", len(f.rejected)), nil
}

func (f *fakeGrants) GoogleRefused(_ context.Context, orgID string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refused = append(f.refused, err)
}

// answer is one canned Calendar API answer.
type answer struct {
	status int
	body   string
}

// fakeCalendar serves answers in turn (the last one again when they run
// out) and records each request's bearer token and query.
type fakeCalendar struct {
	mu      sync.Mutex
	answers []answer
	tokens  []string
	queries []string
	bodies  []string
}

func (f *fakeCalendar) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tokens = append(f.tokens, strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
	f.queries = append(f.queries, r.URL.RawQuery)
	body, _ := io.ReadAll(r.Body)
	f.bodies = append(f.bodies, string(body))
	a := f.answers[min(len(f.tokens), len(f.answers))-1]
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(a.status)
	_, _ = w.Write([]byte(a.body))
}

// calendarAt returns a Calendar client of a configured server whose API
// is fake, with grants from grants, and its log.
func calendarAt(t *testing.T, fake http.Handler, grants google.Grants) (*google.Calendar, *apptest.LogBuffer) {
	t.Helper()
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	o := google.NewOAuth(google.OAuthConfig{ClientID: "client-1", ClientSecret: app.NewSecret("client-secret-1"),
		RedirectURL: callbackURL, CalendarBaseURL: srv.URL + "/calendar/v3", Timeout: 2 * time.Second})
	logs := &apptest.LogBuffer{}
	return google.NewCalendar(o, grants, newLogger(logs)), logs
}

func googleError(status int, reason, message string) string {
	b, _ := json.Marshal(map[string]any{"error": map[string]any{
		"code": status, "message": message, "errors": []map[string]string{{"reason": reason, "message": message}},
	}})
	return string(b)
}

const emptyList = `{"kind":"calendar#events","timeZone":"UTC","items":[]}`

// The Calendar API's answers map to errors by what the caller can do about
// them; a refusal met while using the calendar is recorded for the card,
// while Check, whose caller records the outcome, records nothing.
func TestCalendarAnswers(t *testing.T) {
	unauthorized := answer{401, googleError(401, "authError", "Request had invalid authentication credentials.")}
	tests := []struct {
		name        string
		answers     []answer
		wantCode    string
		wantMsg     string
		wantReason  string
		wantTokens  []string // the bearer tokens sent, in order
		wantRefused bool     // FreeBusy records the refusal
	}{
		{"success", []answer{{200, emptyList}}, "", "", "", []string{"token-1"}, false},
		{"an early 401 is retried once with a new token", []answer{unauthorized, {200, emptyList}}, "", "", "",
			[]string{"token-1", "token-2"}, false},
		{"401 again after a new token", []answer{unauthorized, unauthorized}, app.EVerificationFailed,
			"Google refused the stored authorization (401 Unauthorized). Connect Google Calendar again.", app.ReasonReconnect,
			[]string{"token-1", "token-2"}, true},
		{"403 without the calendar scope", []answer{{403, googleError(403, "insufficientPermissions", "Request had insufficient authentication scopes.")}},
			app.EVerificationFailed, "Google Calendar refused access (403 Forbidden): the connection may not use the calendar's events. Connect Google Calendar again and allow access to calendar events.",
			"", []string{"token-1"}, true},
		{"403 rate limit", []answer{{403, googleError(403, "userRateLimitExceeded", "User Rate Limit Exceeded")}},
			app.EProviderUnavailable, "Google Calendar is limiting requests right now (403 Forbidden). Try again in a minute.", "",
			[]string{"token-1"}, false},
		{"404 no primary calendar", []answer{{404, googleError(404, "notFound", "Not Found")}},
			app.EVerificationFailed, "The connected Google account has no primary calendar (404 Not Found).", "",
			[]string{"token-1"}, true},
		{"400", []answer{{400, googleError(400, "invalid", "The specified time range is empty.")}},
			app.EValidation, "Google Calendar refused the request: The specified time range is empty.", "",
			[]string{"token-1"}, false},
		{"429", []answer{{429, googleError(429, "rateLimitExceeded", "Rate Limit Exceeded")}},
			app.EProviderUnavailable, "Google Calendar is limiting requests right now (429 Too Many Requests)", "",
			[]string{"token-1"}, false},
		{"503", []answer{{503, googleError(503, "backendError", "Backend Error")}},
			app.EProviderUnavailable, "Google Calendar is not available right now (503 Service Unavailable)", "",
			[]string{"token-1"}, false},
		{"an unplanned status", []answer{{418, `{}`}},
			app.EProviderUnavailable, "Google Calendar gave an unexpected answer (418 I'm a teapot)", "",
			[]string{"token-1"}, false},
		{"an unreadable list", []answer{{200, `{"items": [`}},
			app.EProviderUnavailable, "Google Calendar gave an answer that could not be read", "",
			[]string{"token-1"}, false},
	}
	day := time.Date(2031, 3, 10, 9, 0, 0, 0, time.UTC)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, op := range []string{"Check", "FreeBusy"} {
				fake := &fakeCalendar{answers: tt.answers}
				grants := &fakeGrants{}
				cal, _ := calendarAt(t, fake, grants)
				var err error
				if op == "Check" {
					_, err = cal.Check(context.Background(), "org-1")
				} else {
					_, err = cal.FreeBusy(context.Background(), "org-1", day, day.Add(8*time.Hour))
				}
				if app.ErrorCode(err) != tt.wantCode || !strings.Contains(app.ErrorMessage(err), tt.wantMsg) {
					t.Errorf("%s: %v; want %q containing %q", op, err, tt.wantCode, tt.wantMsg)
				}
				if app.ErrorReason(err) != tt.wantReason {
					t.Errorf("%s: reason %q, want %q", op, app.ErrorReason(err), tt.wantReason)
				}
				if !slices.Equal(fake.tokens, tt.wantTokens) {
					t.Errorf("%s: tokens sent %v, want %v", op, fake.tokens, tt.wantTokens)
				}
				wantRejected := []string{""}
				if len(tt.wantTokens) == 2 {
					wantRejected = []string{"", "token-1"}
				}
				if !slices.Equal(grants.rejected, wantRejected) {
					t.Errorf("%s: asked for tokens rejecting %q, want %q", op, grants.rejected, wantRejected)
				}
				wantRefused := 0
				if tt.wantRefused && op == "FreeBusy" {
					wantRefused = 1
				}
				if len(grants.refused) != wantRefused || (wantRefused == 1 && grants.refused[0] != err) {
					t.Errorf("%s: refusals recorded %v, want %d (the error returned)", op, grants.refused, wantRefused)
				}
			}
		})
	}

	t.Run("no grant", func(t *testing.T) {
		fake := &fakeCalendar{answers: []answer{{200, emptyList}}}
		grants := &fakeGrants{err: app.Errorf(app.ENotConfigured, "No Google Calendar credentials are stored for this organization.")}
		cal, _ := calendarAt(t, fake, grants)
		_, err := cal.FreeBusy(context.Background(), "org-1", day, day.Add(time.Hour))
		wantCode(t, err, app.ENotConfigured, "No Google Calendar credentials")
		if len(fake.tokens) != 0 || len(grants.refused) != 0 {
			t.Errorf("%d requests, %d refusals recorded; want none", len(fake.tokens), len(grants.refused))
		}
	})
}

// FreeBusy reads events as Google sends them: in the calendar's time zone,
// without the ones its owner declined, over every page up to a limit.
func TestFreeBusyReadsGooglesAnswer(t *testing.T) {
	ctx := context.Background()
	day := time.Date(2031, 3, 10, 0, 0, 0, 0, time.UTC)

	t.Run("time zone and declined events", func(t *testing.T) {
		list := `{"timeZone":"Europe/Berlin","items":[
			{"id":"a","status":"confirmed","start":{"date":"2031-03-11"},"end":{"date":"2031-03-12"}},
			{"id":"b","status":"confirmed","start":{"dateTime":"2031-03-10T09:00:00Z"},"end":{"dateTime":"2031-03-10T10:00:00Z"},
			 "attendees":[{"email":"owner@example.com","self":true,"responseStatus":"declined"}]},
			{"id":"c","status":"confirmed","start":{"dateTime":"2031-03-10T11:00:00Z"},"end":{"dateTime":"2031-03-10T12:00:00Z"},
			 "attendees":[{"email":"owner@example.com","self":true,"responseStatus":"accepted"},{"email":"x@example.com","responseStatus":"declined"}]},
			{"id":"d","status":"confirmed","start":{"dateTime":"2031-03-10T13:00:00Z"},"end":{"dateTime":"2031-03-10T12:00:00Z"}}
		]}`
		fake := &fakeCalendar{answers: []answer{{200, list}}}
		cal, _ := calendarAt(t, fake, &fakeGrants{})
		got, err := cal.FreeBusy(ctx, "org-1", day, day.AddDate(0, 0, 3))
		if err != nil {
			t.Fatal(err)
		}
		berlin, err := time.LoadLocation("Europe/Berlin")
		if err != nil {
			t.Skip("no time zone data:", err)
		}
		want := []app.Busy{
			{Start: day.Add(11 * time.Hour), End: day.Add(12 * time.Hour)},
			{Start: time.Date(2031, 3, 11, 0, 0, 0, 0, berlin), End: time.Date(2031, 3, 12, 0, 0, 0, 0, berlin)},
		}
		if !sameBusy(got, want) {
			t.Fatalf("FreeBusy = %v, want %v", got, want)
		}
		for _, k := range []string{"timeMin=2031-03-10T00%3A00%3A00Z", "timeMax=2031-03-13T00%3A00%3A00Z", "singleEvents=true",
			"orderBy=startTime", "maxResults=250"} {
			if !strings.Contains(fake.queries[0], k) {
				t.Errorf("query %q lacks %s", fake.queries[0], k)
			}
		}
	})

	t.Run("pages end at a limit", func(t *testing.T) {
		page := `{"timeZone":"UTC","nextPageToken":"more","items":[
			{"id":"a","status":"confirmed","start":{"dateTime":"2031-03-10T09:00:00Z"},"end":{"dateTime":"2031-03-10T10:00:00Z"}}]}`
		fake := &fakeCalendar{answers: []answer{{200, page}}}
		cal, logs := calendarAt(t, fake, &fakeGrants{})
		got, err := cal.FreeBusy(ctx, "org-1", day, day.AddDate(0, 0, 1))
		if err != nil {
			t.Fatal(err)
		}
		if len(fake.tokens) != 20 {
			t.Errorf("%d pages read, want the limit of 20", len(fake.tokens))
		}
		if !strings.Contains(fake.queries[1], "pageToken=more") {
			t.Errorf("second query %q does not ask for the next page", fake.queries[1])
		}
		if len(got) != 1 {
			t.Errorf("FreeBusy = %v, want the one span", got)
		}
		if !strings.Contains(logs.String(), "google free/busy stopped after the page limit") {
			t.Errorf("the cut listing was not logged:\n%s", logs.String())
		}
	})
}

func TestBookSendsTheEvent(t *testing.T) {
	start := time.Date(2031, 4, 2, 15, 0, 0, 0, time.FixedZone("CEST", 2*3600))
	fake := &fakeCalendar{answers: []answer{{200, `{"id":"ev-1","htmlLink":"https://calendar.example/ev-1"}`}}}
	cal, logs := calendarAt(t, fake, &fakeGrants{})
	b := booking(start)
	b.Description = "Bring the X-rays."
	id, link, err := cal.Book(context.Background(), "org-1", b)
	if err != nil || id != "ev-1" || link != "https://calendar.example/ev-1" {
		t.Fatalf("Book = %q, %q, %v", id, link, err)
	}
	var sent map[string]any
	if err := json.Unmarshal([]byte(fake.bodies[0]), &sent); err != nil {
		t.Fatalf("body %q: %v", fake.bodies[0], err)
	}
	want := map[string]any{
		"summary": "Check-up", "description": "Bring the X-rays.",
		"start":     map[string]any{"dateTime": "2031-04-02T15:00:00+02:00"},
		"end":       map[string]any{"dateTime": "2031-04-02T15:30:00+02:00"},
		"attendees": []any{map[string]any{"email": "patient@example.com"}},
	}
	if !reflect.DeepEqual(sent, want) {
		t.Errorf("sent %v, want %v", sent, want)
	}
	if !strings.Contains(logs.String(), "google calendar event booked") {
		t.Errorf("the booking was not logged:\n%s", logs.String())
	}

	t.Run("an answer without an id", func(t *testing.T) {
		fake := &fakeCalendar{answers: []answer{{200, `{"htmlLink":"https://calendar.example/x"}`}}}
		cal, _ := calendarAt(t, fake, &fakeGrants{})
		_, _, err := cal.Book(context.Background(), "org-1", booking(start))
		wantCode(t, err, app.EProviderUnavailable, "Google Calendar gave an unexpected answer (200 OK)")
	})
	t.Run("a refused event", func(t *testing.T) {
		fake := &fakeCalendar{answers: []answer{{400, googleError(400, "invalid", "Invalid attendee email.")}}}
		grants := &fakeGrants{}
		cal, _ := calendarAt(t, fake, grants)
		_, _, err := cal.Book(context.Background(), "org-1", booking(start))
		wantCode(t, err, app.EValidation, "Google Calendar refused the request: Invalid attendee email.")
		if len(grants.refused) != 0 {
			t.Errorf("a refused event was recorded as a refused grant: %v", grants.refused)
		}
	})
	t.Run("a revoked grant is recorded", func(t *testing.T) {
		unauthorized := answer{401, googleError(401, "authError", "Request had invalid authentication credentials.")}
		fake := &fakeCalendar{answers: []answer{unauthorized, unauthorized}}
		grants := &fakeGrants{}
		cal, _ := calendarAt(t, fake, grants)
		_, _, err := cal.Book(context.Background(), "org-1", booking(start))
		wantCode(t, err, app.EVerificationFailed, "Connect Google Calendar again.")
		if len(grants.refused) != 1 || grants.refused[0] != err {
			t.Errorf("refusals recorded %v, want the error returned", grants.refused)
		}
	})
}
