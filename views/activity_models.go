package views

import (
	"net/url"
	"strconv"
	"time"

	"byoc/app/paths"
)

// ActivityView is the activity page's view model: the audit log with its
// filters and, on the full page, the webhook deliveries.
type ActivityView struct {
	Audit AuditView
	// Deliveries is nil in the audit fragment (filters and pages of the
	// audit log re-render only it).
	Deliveries *DeliveriesView
}

// Option is one choice of a filter.
type Option struct{ Value, Label string }

// AuditView is one page of the audit log and the filters that chose it.
type AuditView struct {
	Provider, Action string
	Providers        []Option
	Actions          []Option
	Rows             []AuditRow
	// Next is the cursor of the following page, "" on the last.
	Next string
	// Paged says this is not the first page.
	Paged bool
	Now   time.Time
}

// AuditRow is one audit entry in words.
type AuditRow struct {
	At       time.Time
	Who      string
	What     string
	Provider string
	Failed   bool
	Detail   string
}

// DeliveriesView is the recent deliveries and the refusal counts of the
// last day.
type DeliveriesView struct {
	Rows     []DeliveryRow
	Refusals []RefusalRow
	Now      time.Time
}

// DeliveryRow is one recorded delivery in words.
type DeliveryRow struct {
	At        time.Time
	Type      string
	CallID    string
	Assistant string
	Outcome   string
	Failed    bool
}

// RefusalRow is how many deliveries naming one assistant were refused for
// one reason.
type RefusalRow struct {
	Assistant string
	Reason    string
	Count     int64
}

// AuditURL is the activity page's address with the given filters and
// cursor (empty ones left out), so a filtered page can be shared.
func AuditURL(provider, action, cursor string) string {
	q := url.Values{}
	if provider != "" {
		q.Set("provider", provider)
	}
	if action != "" {
		q.Set("action", action)
	}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	if len(q) == 0 {
		return paths.Activity
	}
	return paths.Activity + "?" + q.Encode()
}

func (v AuditView) nextURL() string { return AuditURL(v.Provider, v.Action, v.Next) }

func (v AuditView) firstURL() string { return AuditURL(v.Provider, v.Action, "") }

// Ago tells t relative to now ("just now", "5 minutes ago"), or as a date
// when it is older than a day.
func Ago(now, t time.Time) string {
	d := now.Sub(t)
	plural := func(n int, unit string) string {
		if n == 1 {
			return "1 " + unit + " ago"
		}
		return strconv.Itoa(n) + " " + unit + "s ago"
	}
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return plural(int(d/time.Minute), "minute")
	case d < 24*time.Hour:
		return plural(int(d/time.Hour), "hour")
	}
	return t.UTC().Format("Jan 2, 2006")
}

func stamp(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") }

func datetime(t time.Time) string { return t.UTC().Format(time.RFC3339) }
