package app

import "time"

// What an org's admins see of its activity: the audit log, the recorded
// webhook deliveries and the refused ones, counted.

// Position is where a page of a newest-first listing ends: the time and id
// of its last row. The next page holds the rows strictly before it.
type Position struct {
	At time.Time
	ID int64
}

// AuditQuery selects a page of an org's audit log, newest first. Empty
// Provider and Action match every entry; a nil Before starts at the newest.
type AuditQuery struct {
	OrgID    string
	Provider Provider
	Action   string
	Before   *Position
	Limit    int
}

// AuditRecord is one audit entry as the activity page shows it: with its id
// and the e-mail of who made the change ("" for the system, or for a user
// who is no longer a member of the org).
type AuditRecord struct {
	ID int64
	AuditEntry
	ActorEmail string
}

// Delivery outcomes (Delivery.Outcome): recorded, and for a tool-calls
// delivery whether every tool succeeded.
const (
	DeliveryHandled        = "handled"
	DeliveryToolsSucceeded = "tools_succeeded"
	DeliveryToolsFailed    = "tools_failed"
)

// Delivery is one verified Vapi delivery an org recorded.
type Delivery struct {
	ID         int64
	ReceivedAt time.Time
	Type       string
	CallID     string
	// AssistantID is the assistant the delivery named ("" for deliveries
	// recorded before it was kept); AssistantRole is its role at the org
	// now ("" when the org no longer has it).
	AssistantID   string
	AssistantRole AssistantRole
	// Outcome is one of the Delivery* outcomes.
	Outcome string
	// Duplicates counts the copies of the delivery that reached the
	// database after it (an instance answers the copies it remembers
	// without a write).
	Duplicates int
}

// Refusal reasons of a webhook that named an org's assistant.
const (
	RefusalBadSignature   = "invalid_signature"
	RefusalStaleTimestamp = "stale_timestamp"
)

// RefusalTally is how many deliveries naming one of an org's assistants
// were refused for Reason within the hour starting at Hour.
type RefusalTally struct {
	OrgID       string
	AssistantID string
	Reason      string
	Hour        time.Time
	Count       int64
}

// RefusalCount sums an org's refusals of one reason for one assistant over
// a window.
type RefusalCount struct {
	AssistantID   string
	AssistantRole AssistantRole
	Reason        string
	Count         int64
}
