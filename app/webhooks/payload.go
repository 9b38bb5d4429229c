package webhooks

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Vapi message types the handler acts on; every other type is acknowledged.
const (
	TypeStatusUpdate    = "status-update"
	TypeEndOfCallReport = "end-of-call-report"
	TypeToolCalls       = "tool-calls"
)

const (
	maxFieldBytes        = 200 // status, ended reason, call id: longer values are clipped
	maxTimestampBytes    = 64  // a longer message.timestamp is not a timestamp
	maxToolCallsPerEvent = 20
)

// message is what the handler reads of a Vapi webhook body. Fields whose
// JSON has an unexpected type are left empty rather than refusing the body:
// Vapi adds fields and types over time, and only the assistant id is
// required.
type message struct {
	Type        string
	CallID      string
	AssistantID string
	// VapiOrgID is the org id in the caller's Vapi account (not ours).
	VapiOrgID string
	// Timestamp is message.timestamp as its raw JSON text (a quoted string
	// keeps its quotes), "" when absent; it is part of the dedup key.
	Timestamp       string
	OccurredAt      *time.Time
	Status          string
	EndedReason     string
	DurationSeconds *float64
	// ToolCalls are every entry of message.toolCallList, in order: each
	// one gets a result, also those over maxToolCallsPerEvent.
	ToolCalls []toolCall
}

// toolCall is one entry of message.toolCallList.
type toolCall struct {
	ID   string
	Name string
	// Args is the arguments object as JSON; nil when the arguments are
	// neither a JSON object nor a string holding one, and for the calls
	// over maxToolCallsPerEvent, which are never run.
	Args json.RawMessage
}

type wireBody struct {
	Message *wireMessage `json:"message"`
}

type wireMessage struct {
	Type string `json:"type"`
	Call *struct {
		ID          string `json:"id"`
		AssistantID string `json:"assistantId"`
		OrgID       string `json:"orgId"`
	} `json:"call"`
	Assistant *struct {
		ID string `json:"id"`
	} `json:"assistant"`
	Timestamp       json.RawMessage `json:"timestamp"`
	Status          string          `json:"status"`
	EndedReason     string          `json:"endedReason"`
	DurationSeconds *float64        `json:"durationSeconds"`
	StartedAt       string          `json:"startedAt"`
	EndedAt         string          `json:"endedAt"`
	ToolCallList    []struct {
		ID       string `json:"id"`
		Function struct {
			Name      string          `json:"name"`
			Arguments json.RawMessage `json:"arguments"`
		} `json:"function"`
	} `json:"toolCallList"`
}

// errMalformed means the body is not JSON at all.
var errMalformed = errors.New("webhooks: body is not valid JSON")

// readPayload reads what handling body needs: the whole message for the
// types that are recorded (parsePayload), and for every other type only its
// type and assistant id, which is all that acknowledging it needs (scan,
// which also checks the body is JSON; a body scan cannot decide alone is
// parsed in full). Either way the answer is parsePayload's, as far as the
// handler reads it.
func readPayload(body []byte) (message, error) {
	r, err := scan(body)
	if err != nil {
		return message{}, err
	}
	switch {
	case !r.exact, r.typ == TypeStatusUpdate, r.typ == TypeEndOfCallReport, r.typ == TypeToolCalls:
		return parsePayload(body)
	}
	return message{Type: r.typ, AssistantID: r.assistantID}, nil
}

// parsePayload reads a webhook body. It fails only when body is not valid
// JSON; a value of an unexpected type leaves its field empty.
func parsePayload(body []byte) (message, error) {
	var w wireBody
	if err := json.Unmarshal(body, &w); err != nil {
		var typeErr *json.UnmarshalTypeError
		if !errors.As(err, &typeErr) {
			return message{}, errMalformed
		}
		// A field of an unexpected type: encoding/json skipped it and
		// decoded the rest.
	}
	if w.Message == nil {
		return message{}, nil
	}
	wm := w.Message
	m := message{
		Type:        wm.Type,
		Status:      storable(wm.Status),
		EndedReason: storable(wm.EndedReason),
	}
	if wm.Call != nil {
		m.CallID, m.AssistantID, m.VapiOrgID = storable(wm.Call.ID), wm.Call.AssistantID, wm.Call.OrgID
	}
	if m.AssistantID == "" && wm.Assistant != nil {
		m.AssistantID = wm.Assistant.ID
	}
	if ts := bytes.TrimSpace(wm.Timestamp); len(ts) > 0 && len(ts) <= maxTimestampBytes && string(ts) != "null" {
		m.Timestamp = string(ts)
		m.OccurredAt = parseEventTime(ts)
	}
	m.DurationSeconds = duration(wm.DurationSeconds, wm.StartedAt, wm.EndedAt)
	if len(wm.ToolCallList) > 0 {
		m.ToolCalls = make([]toolCall, len(wm.ToolCallList))
	}
	for i, tc := range wm.ToolCallList {
		m.ToolCalls[i] = toolCall{ID: tc.ID, Name: tc.Function.Name}
		if i < maxToolCallsPerEvent {
			m.ToolCalls[i].Args = toolArgs(tc.Function.Arguments)
		}
	}
	return m, nil
}

// toolArgs returns the arguments as a JSON object: Vapi sends either the
// object itself or a string holding it. Absent or null arguments are an
// empty object; anything else is nil.
func toolArgs(raw json.RawMessage) json.RawMessage {
	raw = bytes.TrimSpace(raw)
	switch {
	case len(raw) == 0 || string(raw) == "null":
		return json.RawMessage("{}")
	case raw[0] == '{':
		return raw
	case raw[0] == '"':
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return nil
		}
		inner := bytes.TrimSpace([]byte(s))
		if len(inner) == 0 {
			return json.RawMessage("{}")
		}
		if inner[0] != '{' || !json.Valid(inner) {
			return nil
		}
		return inner
	}
	return nil
}

// parseEventTime reads message.timestamp: a number of milliseconds (or of
// seconds, when too small to be milliseconds) since the epoch, possibly
// quoted, or an RFC 3339 string. Implausible values give nil.
func parseEventTime(raw []byte) *time.Time {
	s := string(raw)
	if raw[0] == '"' {
		var v string
		if json.Unmarshal(raw, &v) != nil {
			return nil
		}
		if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
			return plausible(t)
		}
		s = v
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f <= 0 || f > 1e15 {
		return nil
	}
	var t time.Time
	if f > msThreshold {
		t = time.UnixMilli(int64(f))
	} else {
		t = time.Unix(int64(f), 0)
	}
	return plausible(t)
}

// plausible keeps times a database column can hold and a call can have.
func plausible(t time.Time) *time.Time {
	if t.Year() < 1970 || t.Year() > 9999 {
		return nil
	}
	t = t.UTC()
	return &t
}

// maxDurationSeconds bounds a plausible call length; anything outside
// [0, maxDurationSeconds) is not a duration worth storing.
const maxDurationSeconds = 1e9

// duration is the call's length: durationSeconds when given, else the time
// from startedAt to endedAt; nil when neither gives a plausible length (time
// differences saturate at about 292 years, which is not one).
func duration(seconds *float64, startedAt, endedAt string) *float64 {
	var d float64
	switch {
	case seconds != nil:
		d = *seconds
	case startedAt == "" || endedAt == "":
		return nil
	default:
		start, err1 := time.Parse(time.RFC3339Nano, startedAt)
		end, err2 := time.Parse(time.RFC3339Nano, endedAt)
		if err1 != nil || err2 != nil {
			return nil
		}
		d = end.Sub(start).Seconds()
	}
	if d < 0 || d >= maxDurationSeconds {
		return nil
	}
	return &d
}

// storable makes a payload string fit a text column: no NUL bytes (which
// PostgreSQL refuses, so a retried delivery would fail for ever) and at most
// maxFieldBytes long.
func storable(s string) string {
	return clip(strings.ReplaceAll(s, "\x00", ""), maxFieldBytes)
}

// clip shortens s to at most n bytes without splitting a character.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
