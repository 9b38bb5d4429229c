package google

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"byoc/app"
	"byoc/app/providers"
)

// Grants hands out and keeps an org's Google grant; *credentials.Service
// implements it.
type Grants interface {
	// GoogleAccessToken returns a usable access token for the org, other
	// than rejected (the token Google just answered 401 to, or ""),
	// refreshing and saving the grant when needed.
	GoogleAccessToken(ctx context.Context, orgID, rejected string) (string, error)
	// GoogleRefused records a refusal Google gave while the grant was in
	// use, so the dashboard shows it.
	GoogleRefused(ctx context.Context, orgID string, err error)
}

// Calendar reads and books an org's primary Google Calendar with the org's
// own grant. It is safe for concurrent use.
type Calendar struct {
	o      *OAuth
	grants Grants
	log    *slog.Logger
}

// NewCalendar returns the Calendar API client that calls Google through o
// with the grants from grants. logger receives a line per booking and per
// truncated listing (never a token); nil discards.
func NewCalendar(o *OAuth, grants Grants, logger *slog.Logger) *Calendar {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Calendar{o: o, grants: grants, log: logger.With("component", "google")}
}

// Paging of events.list: events per page and the most pages read.
const (
	listPageSize = 250
	maxListPages = 20
)

// Check asks Google for one event of the org's primary calendar
// (events.list, maxResults=1, which the calendar events scope allows),
// refreshing the access token when needed, and records nothing itself (a
// refresh refused with invalid_grant is recorded, as always). It suits a
// caller that records the outcome, like the connection test. Errors:
// ENotConfigured, EVerificationFailed (the stored authorization or its
// scope refused), EProviderUnavailable, EUnavailable and EInternal.
func (s *Calendar) Check(ctx context.Context, orgID string) (app.Verification, error) {
	q := url.Values{"maxResults": {"1"}}
	resp, err := s.calendarCall(ctx, orgID, http.MethodGet, "/calendars/primary/events?"+q.Encode(), nil)
	if err != nil {
		return app.Verification{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return app.Verification{}, s.calendarError(resp)
	}
	var list eventList
	if err := s.o.calendar.DecodeJSON(resp, &list); err != nil {
		return app.Verification{}, err
	}
	return app.Verification{Detail: "Google Calendar accepted the connection; the primary calendar is readable."}, nil
}

// Verify checks the org's stored grant cfg with Check and says whose
// calendar it reached; it is the connection test of Google Calendar.
func (s *Calendar) Verify(ctx context.Context, orgID string, cfg app.Config) (app.Verification, error) {
	if _, err := s.Check(ctx, orgID); err != nil {
		return app.Verification{}, err
	}
	g, _ := cfg.(app.GoogleCalendarConfig)
	if g.Email == "" {
		return app.Verification{Detail: "Google Calendar accepted the connection; its primary calendar is reachable."}, nil
	}
	return app.Verification{Detail: "Google Calendar accepted the connection of " + g.Email + "; its primary calendar is reachable."}, nil
}

// FreeBusy returns the times within [start, end) that the org's primary
// calendar is busy, merged and in order, read with events.list (timeMin,
// timeMax, singleEvents=true, orderBy=startTime), which the calendar events
// scope allows. Cancelled events, events marked "free" (transparent) and
// events the calendar's owner declined do not count; all-day events block
// their whole days in the calendar's time zone (UTC when that zone is not
// known here). Errors: EValidation (start or end missing, end not after
// start, a period longer than MaxFreeBusySpan), ENotConfigured (the org has
// no calendar connected, or the server no Google client),
// EVerificationFailed (Google refused the stored authorization, recorded
// for the card), EProviderUnavailable, EUnavailable and EInternal.
func (s *Calendar) FreeBusy(ctx context.Context, orgID string, start, end time.Time) ([]app.Busy, error) {
	if err := app.CheckPeriod(start, end); err != nil {
		return nil, err
	}
	var busy []app.Busy
	pageToken := ""
	for page := 0; ; page++ {
		if page == maxListPages {
			s.log.WarnContext(ctx, "google free/busy stopped after the page limit", "org_id", orgID, "pages", page)
			break
		}
		q := url.Values{
			"timeMin": {start.UTC().Format(time.RFC3339)}, "timeMax": {end.UTC().Format(time.RFC3339)},
			"singleEvents": {"true"}, "orderBy": {"startTime"}, "maxResults": {strconv.Itoa(listPageSize)},
		}
		if pageToken != "" {
			q.Set("pageToken", pageToken)
		}
		resp, err := s.calendarCall(ctx, orgID, http.MethodGet, "/calendars/primary/events?"+q.Encode(), nil)
		if err == nil && resp.StatusCode != http.StatusOK {
			err = s.calendarError(resp)
		}
		if err != nil {
			return nil, s.inUse(ctx, orgID, err)
		}
		var list eventList
		if err := s.o.calendar.DecodeJSON(resp, &list); err != nil {
			return nil, err
		}
		loc := time.UTC
		if list.TimeZone != "" {
			if l, err := time.LoadLocation(list.TimeZone); err == nil {
				loc = l
			}
		}
		for _, ev := range list.Items {
			b, ok := ev.busy(loc)
			if !ok {
				continue
			}
			b.Start, b.End = later(b.Start, start), earlier(b.End, end)
			if b.End.After(b.Start) {
				busy = append(busy, b)
			}
		}
		if list.NextPageToken == "" {
			break
		}
		pageToken = list.NextPageToken
	}
	return mergeBusy(busy), nil
}

// Book creates an event in the org's primary calendar (events.insert with
// start and end as RFC 3339 date-times and the attendee, when given) and
// returns its id and its link in Google Calendar. Errors: EValidation (bad
// input, or Google refused the event as invalid), ENotConfigured,
// EVerificationFailed (Google refused the stored authorization, recorded
// for the card), EProviderUnavailable, EUnavailable and EInternal.
func (s *Calendar) Book(ctx context.Context, orgID string, b app.Booking) (eventID, htmlLink string, err error) {
	b, err = b.Checked()
	if err != nil {
		return "", "", err
	}
	in := eventInsert{
		Summary: b.Summary, Description: b.Description,
		Start: eventTime{DateTime: b.Start.Format(time.RFC3339)},
		End:   eventTime{DateTime: b.End.Format(time.RFC3339)},
	}
	if b.AttendeeEmail != "" {
		in.Attendees = []attendee{{Email: b.AttendeeEmail}}
	}
	body, err := json.Marshal(in)
	if err != nil {
		return "", "", app.Internal(err)
	}
	resp, err := s.calendarCall(ctx, orgID, http.MethodPost, "/calendars/primary/events", body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = s.calendarError(resp)
	}
	if err != nil {
		return "", "", s.inUse(ctx, orgID, err)
	}
	var ev event
	if err := s.o.calendar.DecodeJSON(resp, &ev); err != nil {
		return "", "", err
	}
	if ev.ID == "" {
		return "", "", s.o.calendar.Unexpected(resp)
	}
	s.log.InfoContext(ctx, "google calendar event booked", "org_id", orgID, "event_id", ev.ID)
	return ev.ID, ev.HTMLLink, nil
}

// calendarCall sends one Calendar API request (path relative to the API
// base) with the org's access token. When Google answers 401 it refreshes
// the token once and repeats the request: the first answer then says only
// that this access token died early. 429 and 5xx answers are errors
// (EProviderUnavailable); every other answer is returned.
func (s *Calendar) calendarCall(ctx context.Context, orgID, method, path string, body []byte) (*providers.Response, error) {
	do := func(accessToken string) (*providers.Response, error) {
		h := http.Header{"Authorization": {"Bearer " + accessToken}}
		if body != nil {
			h.Set("Content-Type", "application/json")
		}
		return s.o.calendar.Do(ctx, providers.Request{Method: method, URL: s.o.calendarBase + path, Header: h, Body: body})
	}
	if !s.o.Configured() {
		return nil, errNotSetUp()
	}
	tok, err := s.grants.GoogleAccessToken(ctx, orgID, "")
	if err != nil {
		return nil, err
	}
	resp, err := do(tok)
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	if tok, err = s.grants.GoogleAccessToken(ctx, orgID, tok); err != nil {
		return nil, err
	}
	return do(tok)
}

// rateLimitReasons are the 403 reasons with which Google limits requests.
var rateLimitReasons = []string{"rateLimitExceeded", "userRateLimitExceeded", "quotaExceeded", "dailyLimitExceeded"}

// calendarError turns a Calendar API answer other than 200 into an app
// error.
func (s *Calendar) calendarError(resp *providers.Response) error {
	var ge struct {
		Error struct {
			Message string `json:"message"`
			Errors  []struct {
				Reason string `json:"reason"`
			} `json:"errors"`
		} `json:"error"`
	}
	_ = json.Unmarshal(resp.Body, &ge)
	reason := ""
	if len(ge.Error.Errors) > 0 {
		reason = ge.Error.Errors[0].Reason
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		return &app.Error{Code: app.EVerificationFailed, Reason: app.ReasonReconnect,
			Message: fmt.Sprintf(reconnectMessage, resp.Status())}
	case resp.StatusCode == http.StatusForbidden && slices.Contains(rateLimitReasons, reason):
		return app.Errorf(app.EProviderUnavailable, "Google Calendar is limiting requests right now (%s). Try again in a minute.", resp.Status())
	case resp.StatusCode == http.StatusForbidden:
		why := "."
		if reason == "insufficientPermissions" {
			why = ": the connection may not use the calendar's events."
		}
		return &app.Error{Code: app.EVerificationFailed,
			Message: "Google Calendar refused access (" + resp.Status() + ")" + why + " Connect Google Calendar again and allow access to calendar events."}
	case resp.StatusCode == http.StatusNotFound:
		return app.Errorf(app.EVerificationFailed, "The connected Google account has no primary calendar (%s).", resp.Status())
	case resp.StatusCode == http.StatusBadRequest:
		msg := "Google Calendar refused the request."
		if why := providers.CleanReason(ge.Error.Message, nil); why != "" {
			msg = "Google Calendar refused the request: " + why
		}
		return &app.Error{Code: app.EValidation, Message: msg}
	}
	return s.o.calendar.Unexpected(resp)
}

// inUse records a refusal met while using the calendar (so the card shows
// it) and returns err.
func (s *Calendar) inUse(ctx context.Context, orgID string, err error) error {
	if app.ErrorCode(err) == app.EVerificationFailed {
		s.grants.GoogleRefused(ctx, orgID, err)
	}
	return err
}

// The Calendar API's JSON, as far as it is read or written here.
type (
	eventList struct {
		TimeZone      string  `json:"timeZone"`
		Items         []event `json:"items"`
		NextPageToken string  `json:"nextPageToken"`
	}
	event struct {
		ID           string     `json:"id"`
		Status       string     `json:"status"`
		HTMLLink     string     `json:"htmlLink"`
		Transparency string     `json:"transparency"`
		Start        eventTime  `json:"start"`
		End          eventTime  `json:"end"`
		Attendees    []attendee `json:"attendees"`
	}
	eventTime struct {
		DateTime string `json:"dateTime,omitempty"`
		Date     string `json:"date,omitempty"`
	}
	attendee struct {
		Email          string `json:"email"`
		Self           bool   `json:"self,omitempty"`
		ResponseStatus string `json:"responseStatus,omitempty"`
	}
	eventInsert struct {
		Summary     string     `json:"summary"`
		Description string     `json:"description,omitempty"`
		Start       eventTime  `json:"start"`
		End         eventTime  `json:"end"`
		Attendees   []attendee `json:"attendees,omitempty"`
	}
)

// busy returns the time ev blocks, if it blocks any.
func (ev event) busy(loc *time.Location) (app.Busy, bool) {
	if ev.Status == "cancelled" || ev.Transparency == "transparent" {
		return app.Busy{}, false
	}
	for _, a := range ev.Attendees {
		if a.Self && a.ResponseStatus == "declined" {
			return app.Busy{}, false
		}
	}
	start, ok1 := ev.Start.at(loc)
	end, ok2 := ev.End.at(loc)
	if !ok1 || !ok2 || !end.After(start) {
		return app.Busy{}, false
	}
	return app.Busy{Start: start, End: end}, true
}

// at reads a start or end: a date-time, or the beginning of a date in loc.
func (t eventTime) at(loc *time.Location) (time.Time, bool) {
	if t.DateTime != "" {
		v, err := time.Parse(time.RFC3339, t.DateTime)
		return v, err == nil
	}
	if t.Date != "" {
		v, err := time.ParseInLocation(time.DateOnly, t.Date, loc)
		return v, err == nil
	}
	return time.Time{}, false
}

// mergeBusy sorts spans and joins those that overlap or touch.
func mergeBusy(in []app.Busy) []app.Busy {
	slices.SortFunc(in, func(a, b app.Busy) int { return a.Start.Compare(b.Start) })
	out := []app.Busy{}
	for _, b := range in {
		if n := len(out); n > 0 && !b.Start.After(out[n-1].End) {
			out[n-1].End = later(out[n-1].End, b.End)
			continue
		}
		out = append(out, b)
	}
	return out
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
