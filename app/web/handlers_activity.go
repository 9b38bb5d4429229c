package web

import (
	"net/http"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"byoc/app"
	"byoc/app/activity"
	"byoc/views"
)

// The activity (admins; the service refuses members with EForbidden):
// GET /settings/activity and GET /api/audit page the audit log, filtered by
// provider and action (the filters and the cursor are query parameters, so
// a filtered page has an address to share); the settings page shows the
// recent webhook deliveries too. GET /api/webhooks/deliveries pages the
// deliveries with the refusal counts of the last day.

// deliveriesOnPage is how many deliveries the settings page shows.
const deliveriesOnPage = "20"

// activityPage answers a page of the audit log: JSON, the audit fragment
// for htmx, or the settings page with the recent deliveries.
func (s *Server) activityPage(c *fiber.Ctx) error {
	a, _ := account(c)
	ctx := c.UserContext()
	page, err := s.deps.Activity.Audit(ctx, a.Principal, activity.AuditInput{
		Provider: c.Query("provider"), Action: c.Query("action"), Cursor: c.Query("cursor"), Limit: c.Query("limit"),
	})
	if err != nil {
		return err
	}
	now := time.Now()
	av := auditView(page, c.Query("cursor") != "", now)
	v := views.ActivityView{Audit: av}
	if negotiate(c) == formatPage {
		dp, err := s.deps.Activity.Deliveries(ctx, a.Principal, "", deliveriesOnPage)
		if err != nil {
			return err
		}
		v.Deliveries = deliveriesView(dp, now)
	}
	return s.reply(c, http.StatusOK, answer{Data: newAuditData(page),
		view: view{Title: "Activity", Page: views.ActivityPage(v), Fragment: views.AuditFragment(av)}})
}

// deliveries answers a page of the recorded webhook deliveries and the
// refusal counts (JSON only).
func (s *Server) deliveries(c *fiber.Ctx) error {
	a, _ := account(c)
	page, err := s.deps.Activity.Deliveries(c.UserContext(), a.Principal, c.Query("cursor"), c.Query("limit"))
	if err != nil {
		return err
	}
	return sendJSON(c, http.StatusOK, newDeliveriesData(page))
}

func auditView(p activity.AuditPage, paged bool, now time.Time) views.AuditView {
	v := views.AuditView{Provider: string(p.Provider), Action: p.Action, Next: p.Next, Paged: paged, Now: now}
	for _, pr := range app.Providers {
		v.Providers = append(v.Providers, views.Option{Value: string(pr), Label: pr.Title()})
	}
	for _, ac := range activity.Actions {
		v.Actions = append(v.Actions, views.Option{Value: ac.Code, Label: ac.Label})
	}
	for _, e := range p.Entries {
		r := views.AuditRow{At: e.At, Who: who(e), What: activity.Describe(e.AuditEntry),
			Failed: e.Outcome == app.OutcomeFailure, Detail: e.Detail}
		if e.Provider != "" {
			r.Provider = e.Provider.Title()
		}
		v.Rows = append(v.Rows, r)
	}
	return v
}

// who names the author of an entry.
func who(e app.AuditRecord) string {
	switch {
	case e.ActorEmail != "":
		return e.ActorEmail
	case e.ActorID == "":
		return "BYOC"
	}
	return "A former member"
}

func deliveriesView(p activity.DeliveriesPage, now time.Time) *views.DeliveriesView {
	v := &views.DeliveriesView{Now: now}
	for _, d := range p.Deliveries {
		v.Rows = append(v.Rows, views.DeliveryRow{At: d.ReceivedAt, Type: d.Type, CallID: d.CallID,
			Assistant: assistantName(d.AssistantRole, d.AssistantID), Outcome: deliveryOutcome(d),
			Failed: d.Outcome == app.DeliveryToolsFailed})
	}
	for _, r := range p.Refusals {
		v.Refusals = append(v.Refusals, views.RefusalRow{Assistant: assistantName(r.AssistantRole, r.AssistantID),
			Reason: refusalReason(r.Reason, r.Count), Count: r.Count})
	}
	return v
}

func assistantName(role app.AssistantRole, id string) string {
	switch {
	case role == app.Inbound:
		return "inbound assistant"
	case role == app.Outbound:
		return "outbound assistant"
	case id == "":
		return "an assistant"
	}
	return "assistant " + id
}

// deliveryOutcome says in words how a delivery was handled.
func deliveryOutcome(d app.Delivery) string {
	var s string
	switch d.Outcome {
	case app.DeliveryToolsSucceeded:
		s = "Tools succeeded"
	case app.DeliveryToolsFailed:
		s = "A tool failed"
	default:
		s = "Handled"
	}
	switch {
	case d.Duplicates == 1:
		s += ", 1 duplicate"
	case d.Duplicates > 1:
		s += ", " + strconv.Itoa(d.Duplicates) + " duplicates"
	}
	return s
}

// refusalReason says in words why deliveries were refused.
func refusalReason(reason string, n int64) string {
	noun := "deliveries"
	if n == 1 {
		noun = "delivery"
	}
	if reason == app.RefusalStaleTimestamp {
		return noun + " with a stale timestamp (a replay, or a clock that is off)"
	}
	return noun + " with a bad signature (Vapi may be signing with an old secret)"
}

// auditData is the JSON answer of GET /api/audit.
type auditData struct {
	Entries    []auditItem `json:"entries"`
	NextCursor string      `json:"nextCursor,omitempty"`
}

type auditItem struct {
	ID          int64     `json:"id"`
	At          time.Time `json:"at"`
	ActorID     string    `json:"actorUserId,omitempty"`
	ActorEmail  string    `json:"actorEmail,omitempty"`
	Action      string    `json:"action"`
	Description string    `json:"description"`
	Provider    string    `json:"provider,omitempty"`
	Outcome     string    `json:"outcome"`
	Detail      string    `json:"detail,omitempty"`
}

func newAuditData(p activity.AuditPage) auditData {
	out := auditData{Entries: make([]auditItem, 0, len(p.Entries)), NextCursor: p.Next}
	for _, e := range p.Entries {
		out.Entries = append(out.Entries, auditItem{ID: e.ID, At: e.At.UTC(), ActorID: e.ActorID, ActorEmail: e.ActorEmail,
			Action: e.Action, Description: activity.Describe(e.AuditEntry), Provider: string(e.Provider),
			Outcome: e.Outcome, Detail: e.Detail})
	}
	return out
}

// deliveriesData is the JSON answer of GET /api/webhooks/deliveries.
type deliveriesData struct {
	Deliveries []deliveryItem `json:"deliveries"`
	NextCursor string         `json:"nextCursor,omitempty"`
	Refusals   refusalsData   `json:"refusals"`
}

type deliveryItem struct {
	ID            int64     `json:"id"`
	ReceivedAt    time.Time `json:"receivedAt"`
	Type          string    `json:"type"`
	CallID        string    `json:"callId"`
	AssistantID   string    `json:"assistantId,omitempty"`
	AssistantRole string    `json:"assistantRole,omitempty"`
	Outcome       string    `json:"outcome"`
	Duplicates    int       `json:"duplicates"`
}

type refusalsData struct {
	Since  time.Time     `json:"since"`
	Counts []refusalItem `json:"counts"`
}

type refusalItem struct {
	AssistantID   string `json:"assistantId"`
	AssistantRole string `json:"assistantRole,omitempty"`
	Reason        string `json:"reason"`
	Count         int64  `json:"count"`
}

func newDeliveriesData(p activity.DeliveriesPage) deliveriesData {
	out := deliveriesData{Deliveries: make([]deliveryItem, 0, len(p.Deliveries)), NextCursor: p.Next,
		Refusals: refusalsData{Since: p.Since.UTC(), Counts: make([]refusalItem, 0, len(p.Refusals))}}
	for _, d := range p.Deliveries {
		out.Deliveries = append(out.Deliveries, deliveryItem{ID: d.ID, ReceivedAt: d.ReceivedAt.UTC(), Type: d.Type,
			CallID: d.CallID, AssistantID: d.AssistantID, AssistantRole: string(d.AssistantRole), Outcome: d.Outcome,
			Duplicates: d.Duplicates})
	}
	for _, r := range p.Refusals {
		out.Refusals.Counts = append(out.Refusals.Counts, refusalItem{AssistantID: r.AssistantID,
			AssistantRole: string(r.AssistantRole), Reason: r.Reason, Count: r.Count})
	}
	return out
}
