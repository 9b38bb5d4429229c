package app

import "time"

// AssistantRole says which way an org's Vapi assistant talks: answering
// calls (inbound) or placing them (outbound).
type AssistantRole string

// Assistant roles; each org has at most one of each.
const (
	Inbound  AssistantRole = "inbound"
	Outbound AssistantRole = "outbound"
)

// AssistantMapping ties a Vapi assistant (in the org's own Vapi account) to
// the org, so an incoming webhook can be routed by assistant id.
type AssistantMapping struct {
	VapiAssistantID string
	OrgID           string
	Role            AssistantRole
	Name            string
	CreatedAt       time.Time
	LastUsedAt      *time.Time
}

// OutboundAgent is the org's outbound calling set-up: the assistant that
// places calls and, once Twilio is connected, the number it calls from.
type OutboundAgent struct {
	OrgID           string
	VapiAssistantID string
	PhoneNumber     string
	UpdatedAt       time.Time
}

// AuditEntry records who did what to which credential and how it went. It
// never holds a secret: Detail is a user-facing message at most.
type AuditEntry struct {
	OrgID    string
	ActorID  string // user id; "" for the system (a webhook, a background job)
	Action   string // e.g. "credentials.save", "credentials.verify", "credentials.disconnect"
	Provider Provider
	Outcome  string // "success" or "failure"
	Detail   string
	At       time.Time
}

// Audit outcomes.
const (
	OutcomeSuccess = "success"
	OutcomeFailure = "failure"
)
