package app

import "time"

// CallEvent is one Vapi call event recorded for an org from a verified
// webhook (a status update or an end-of-call report). It holds no personal
// data: no phone numbers, no transcript.
type CallEvent struct {
	OrgID  string
	CallID string
	// Type is the Vapi message type, such as "status-update" or
	// "end-of-call-report".
	Type string
	// Status is the call's status for a status update ("ringing",
	// "in-progress", "ended", ...); "" when the event has none.
	Status string
	// EndedReason is Vapi's reason the call ended; "" when the event has none.
	EndedReason string
	// DurationSeconds is the call's length when the event tells it.
	DurationSeconds *float64
	// DedupKey identifies the delivery within the org: a second event with
	// the same key is the same delivery and is not recorded again.
	DedupKey string
	// OccurredAt is when Vapi says the event happened, when it says so.
	OccurredAt *time.Time
	// ReceivedAt is when the webhook reached the server; the zero time means
	// "now" to the store.
	ReceivedAt time.Time
	// AssistantID is the Vapi assistant the delivery named.
	AssistantID string
}
