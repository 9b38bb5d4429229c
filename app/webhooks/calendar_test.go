package webhooks_test

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"byoc/app"
	"byoc/app/apptest"
	"byoc/app/credentials"
	"byoc/app/integrations"
	"byoc/app/providers/google"
	"byoc/app/sandbox"
	"byoc/app/system"
	"byoc/app/system/systemtest"
	"byoc/app/webhooks"
	"byoc/db/dbtest"
)

// The Google Calendar client is the handler's calendar as it is.
var _ webhooks.Calendar = (*google.Calendar)(nil)

// googleEnv is a handler whose calendar tools use the real Google Calendar
// client and the credential service's token source, as system.Build wires
// them over the real database, talking to the Google stand-in.
type googleEnv struct {
	*env
	g      *sandbox.Google
	srv    *httptest.Server
	svc    *integrations.Service
	gcreds *credentials.Service
	glogs  *apptest.LogBuffer
	ts     int64
	// secrets are the tokens stored for connected orgs.
	secrets []string
}

func newGoogleEnv(t *testing.T) *googleEnv {
	t.Helper()
	g := sandbox.NewGoogle(sandbox.GoogleOptions{RedirectURIs: []string{systemtest.GoogleCallbackURL}})
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	cfg := systemtest.Config(t, sandbox.URLs{})
	cfg.ProviderTimeout = 5 * time.Second
	systemtest.WithGoogle(cfg, g, srv.URL)
	glogs := &apptest.LogBuffer{}
	logger := slog.New(slog.NewJSONHandler(glogs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	sys, err := system.Build(cfg, dbtest.DB(t), system.Options{Logger: logger, GoogleHTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	ge := &googleEnv{env: newEnv(t, withCalendar(sys.Calendar)), g: g, srv: srv, svc: sys.Integrations,
		gcreds: sys.Credentials, glogs: glogs, ts: time.Now().UnixMilli()}
	t.Cleanup(ge.assertNoSecretsLogged)
	return ge
}

// connect runs the Google connect flow for the org as an admin signing in
// to Google as email, and remembers the tokens stored.
func (ge *googleEnv) connect(o org, email string) {
	ge.t.Helper()
	ctx := context.Background()
	var user string
	if err := ge.db.Pool.QueryRow(ctx, `insert into users (email, password_hash) values ($1, 'x') returning id::text`,
		"admin-"+newUUID(ge.t)+"@example.test").Scan(&user); err != nil {
		ge.t.Fatal(err)
	}
	if _, err := ge.db.Pool.Exec(ctx, `insert into org_members (org_id, user_id, role) values ($1, $2, 'admin')`, o.id, user); err != nil {
		ge.t.Fatal(err)
	}
	p := app.Principal{UserID: user, OrgID: o.id, Role: app.RoleAdmin}
	const binding = "csrf-token-of-the-session"
	authURL, err := ge.svc.ConnectURL(ctx, p, binding)
	if err != nil {
		ge.t.Fatalf("ConnectURL: %v", err)
	}
	loc, err := sandbox.GoogleConsent(ctx, ge.srv.Client(), authURL, sandbox.GoogleConsentChoice{Email: email})
	if err != nil {
		ge.t.Fatalf("consent: %v", err)
	}
	q := loc.Query()
	got, err := ge.svc.Callback(ctx, p, binding, integrations.CallbackQuery{State: q.Get("state"), Code: q.Get("code"), Error: q.Get("error")})
	if err != nil || got != email {
		ge.t.Fatalf("Callback = %q, %v; want %q", got, err, email)
	}
	cfg, err := ge.gcreds.GoogleCalendar(ctx, o.id)
	if err != nil {
		ge.t.Fatal(err)
	}
	ge.secrets = append(ge.secrets, cfg.AccessToken.Reveal(), cfg.RefreshToken.Reveal())
}

// call runs one tool call for o in a delivery of its own and returns its
// result; the webhook must answer 200 with exactly one result carrying no
// stored token.
func (ge *googleEnv) call(t *testing.T, o org, tool string, args map[string]any) string {
	t.Helper()
	ge.ts++
	resp := ge.handle(o.secret, toolCallsBody(t, o.assistant, ge.ts, tc{id: "call_" + tool, name: tool, args: args}))
	r := results(t, resp)
	if len(r) != 1 || r[0].ToolCallID != "call_"+tool || r[0].Name != tool {
		t.Fatalf("results %+v; want one for %s", r, tool)
	}
	apptest.AssertNoSecret(t, "the result of "+tool, encode(t, resp.Body), ge.secrets...)
	return r[0].Result
}

func (ge *googleEnv) assertNoSecretsLogged() {
	apptest.AssertNoSecret(ge.t, "the log", ge.logs.String()+ge.glogs.String(),
		append(slices.Clone(ge.secrets), sandbox.GoogleSandboxClientSecret)...)
}

func wantResult(t *testing.T, got string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("result %q\nlacks %q", got, w)
		}
	}
}

func TestCalendarToolsWithGoogle(t *testing.T) {
	ge := newGoogleEnv(t)
	const owner = "owner@example.com"
	o := ge.newOrg("google-tools-secret-12345")
	ge.connect(o, owner)
	day := time.Date(2031, 3, 10, 0, 0, 0, 0, time.UTC)
	at := func(hour, minute int) time.Time {
		return day.Add(time.Duration(hour)*time.Hour + time.Duration(minute)*time.Minute)
	}
	ge.g.AddEvent(owner, sandbox.GoogleEvent{Summary: "Dentist", Start: at(10, 0), End: at(11, 0)})
	ge.g.AddEvent(owner, sandbox.GoogleEvent{Summary: "Lunch", Start: at(12, 0), End: at(13, 0)})
	ge.g.AddEvent(owner, sandbox.GoogleEvent{Summary: "Free time", Start: at(15, 0), End: at(16, 0), Transparency: "transparent"})
	events := func() int { return len(ge.g.Events(owner)) }

	t.Run("a free slot is free", func(t *testing.T) {
		// The slot ends when the dentist begins: [start, end) does not overlap it.
		got := ge.call(t, o, webhooks.ToolCheckAvailability, map[string]any{"start": "2031-03-10T09:00:00Z", "end": "2031-03-10T10:00:00Z"})
		if got != "The calendar is free from 2031-03-10T09:00:00Z to 2031-03-10T10:00:00Z." {
			t.Errorf("result %q", got)
		}
		got = ge.call(t, o, webhooks.ToolCheckAvailability, map[string]any{"start": "2031-03-10T15:00:00Z", "end": "2031-03-10T16:00:00Z"})
		wantResult(t, got, "The calendar is free from")
	})

	t.Run("an overlapping event is listed", func(t *testing.T) {
		got := ge.call(t, o, webhooks.ToolCheckAvailability, map[string]any{"start": "2031-03-10T09:30:00Z", "end": "2031-03-10T12:30:00Z"})
		wantResult(t, got, "The calendar is not free from 2031-03-10T09:30:00Z to 2031-03-10T12:30:00Z",
			"busy from 2031-03-10T10:00:00Z to 2031-03-10T11:00:00Z, and from 2031-03-10T12:00:00Z to 2031-03-10T12:30:00Z.")
	})

	t.Run("times come back in the caller's offset", func(t *testing.T) {
		got := ge.call(t, o, webhooks.ToolCheckAvailability, map[string]any{"start": "2031-03-10T11:30:00+01:00", "end": "2031-03-10T13:00:00+01:00"})
		wantResult(t, got, "busy from 2031-03-10T11:30:00+01:00 to 2031-03-10T12:00:00+01:00.")
	})

	t.Run("book_appointment creates the event", func(t *testing.T) {
		before := events()
		got := ge.call(t, o, webhooks.ToolBookAppointment, map[string]any{
			"start": "2031-03-10T14:00:00Z", "end": "2031-03-10T14:30:00Z", "summary": "Check-up", "attendeeEmail": "pat@example.com"})
		wantResult(t, got, "Booked: Check-up from 2031-03-10T14:00:00Z to 2031-03-10T14:30:00Z.",
			"pat@example.com", "Event link: https://www.google.com/calendar/event?eid=")
		evs := ge.g.Events(owner)
		if len(evs) != before+1 {
			t.Fatalf("%d events at the stand-in, want %d", len(evs), before+1)
		}
		i := slices.IndexFunc(evs, func(e sandbox.GoogleEvent) bool { return e.Summary == "Check-up" })
		if i < 0 || !evs[i].Start.Equal(at(14, 0)) || !evs[i].End.Equal(at(14, 30)) ||
			!slices.Equal(evs[i].Attendees, []string{"pat@example.com"}) || !strings.Contains(got, evs[i].HTMLLink) {
			t.Fatalf("the stand-in holds %+v", evs)
		}
		// The booking now counts as busy.
		got = ge.call(t, o, webhooks.ToolCheckAvailability, map[string]any{"start": "2031-03-10T13:30:00Z", "end": "2031-03-10T15:00:00Z"})
		wantResult(t, got, "busy from 2031-03-10T14:00:00Z to 2031-03-10T14:30:00Z.")
	})

	t.Run("book_appointment refuses", func(t *testing.T) {
		before := events()
		for _, tt := range []struct {
			name string
			args map[string]any
			want string
		}{
			{"a busy slot", map[string]any{"start": "2031-03-10T10:30:00Z", "end": "2031-03-10T11:30:00Z", "summary": "Clash"},
				"The appointment was not booked: the time from 2031-03-10T10:30:00Z to 2031-03-10T11:30:00Z is not free; the calendar is busy from 2031-03-10T10:30:00Z to 2031-03-10T11:00:00Z."},
			{"the slot just booked", map[string]any{"start": "2031-03-10T14:15:00Z", "end": "2031-03-10T14:45:00Z"}, "is not free"},
			{"an end before the start", map[string]any{"start": "2031-03-10T18:00:00Z", "end": "2031-03-10T17:00:00Z"}, "the end must be after the start"},
			{"unparsable times", map[string]any{"start": "next Tuesday at 3", "end": "next Tuesday at 4"}, "such as 2030-05-06T14:00:00+02:00"},
			{"a time without a zone", map[string]any{"start": "2031-03-10T18:00:00", "end": "2031-03-10T19:00:00"}, "time zone"},
			{"a slot over 8 hours", map[string]any{"start": "2031-03-11T08:00:00Z", "end": "2031-03-11T16:01:00Z"}, "at most 8 hours"},
			{"a bad attendee", map[string]any{"start": "2031-03-11T08:00:00Z", "end": "2031-03-11T09:00:00Z", "attendeeEmail": "Pat <pat@example.com>"}, "email address is not valid"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				got := ge.call(t, o, webhooks.ToolBookAppointment, tt.args)
				wantResult(t, got, "The appointment was not booked: ", tt.want)
			})
		}
		if n := events(); n != before {
			t.Errorf("%d events made by refused bookings", n-before)
		}
	})

	t.Run("an org without a calendar", func(t *testing.T) {
		other := ge.newOrg("no-google-secret-1234567")
		before := events()
		for _, tool := range []string{webhooks.ToolCheckAvailability, webhooks.ToolBookAppointment} {
			got := ge.call(t, other, tool, map[string]any{"start": "2031-03-12T09:00:00Z", "end": "2031-03-12T09:30:00Z", "summary": "x"})
			if got != "Google Calendar is not connected for this organization." {
				t.Errorf("%s: %q", tool, got)
			}
		}
		if events() != before {
			t.Error("an event was made for an org without a calendar")
		}
	})

	t.Run("a revoked grant needs reconnecting", func(t *testing.T) {
		const email = "revoked@example.com"
		gone := ge.newOrg("revoked-google-secret-123")
		ge.connect(gone, email)
		ge.g.RevokeGrants(email)
		ge.g.ExpireAccessTokens(email)
		got := ge.call(t, gone, webhooks.ToolCheckAvailability, map[string]any{"start": "2031-03-12T09:00:00Z", "end": "2031-03-12T09:30:00Z"})
		wantResult(t, got, "Availability could not be checked: Google Calendar needs to be reconnected for this organization")
		got = ge.call(t, gone, webhooks.ToolBookAppointment, map[string]any{"start": "2031-03-12T09:00:00Z", "end": "2031-03-12T09:30:00Z", "summary": "x"})
		wantResult(t, got, "The appointment was not booked: Google Calendar needs to be reconnected for this organization")
		if n := len(ge.g.Events(email)); n != 0 {
			t.Errorf("%d events booked with a revoked grant", n)
		}
		// The refusal is recorded for the dashboard's card.
		sts, err := ge.gcreds.Statuses(context.Background(), gone.id)
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(sts, func(s app.Status) bool { return s.Provider == app.GoogleCalendar })
		if i < 0 || !sts[i].NeedsAttention {
			t.Errorf("status %+v; want Google Calendar needing attention", sts)
		}
	})
}
