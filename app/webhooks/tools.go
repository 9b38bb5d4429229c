package webhooks

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"byoc/app"
	"byoc/app/providers/twilio"
)

// Built-in tool names an assistant can call.
const (
	ToolSendSMS           = "send_sms"
	ToolCheckAvailability = "check_availability"
	ToolBookAppointment   = "book_appointment"
)

// Tool results that do not depend on the call.
const (
	resultCalendarNotConnected = "Google Calendar is not connected for this organization."
	resultTwilioNotConnected   = "Twilio is not connected for this organization, so no message was sent."
)

// maxCalendarSpan bounds the period a calendar tool may ask about.
const maxCalendarSpan = 31 * 24 * time.Hour

// Calendar reads and books the org's Google Calendar with the org's own
// grant. The Google Calendar integration implements it; until it exists the
// handler gets nil and the calendar tools answer that the calendar is not
// connected. An implementation returns ENotConfigured when the org has no
// usable grant, EValidation for a request the calendar refuses and
// EProviderUnavailable when Google cannot be reached; its messages must be
// safe to read to a caller.
type Calendar interface {
	// FreeBusy returns the busy periods of the org's primary calendar that
	// overlap [start, end), in order.
	FreeBusy(ctx context.Context, orgID string, start, end time.Time) ([]Interval, error)
	// Book creates the event b on the org's primary calendar and returns its
	// event id.
	Book(ctx context.Context, orgID string, b Booking) (eventID string, err error)
}

// Interval is a period of time, start inclusive, end exclusive.
type Interval struct {
	Start, End time.Time
}

// Booking is an appointment to put on the org's calendar. AttendeeEmail is
// optional: when set, the attendee is invited.
type Booking struct {
	Start, End    time.Time
	Summary       string
	AttendeeEmail string
}

// toolResult is one entry of Vapi's {"results": [...]} answer.
type toolResult struct {
	ToolCallID string `json:"toolCallId"`
	Name       string `json:"name"`
	Result     string `json:"result"`
}

type toolResults struct {
	Results []toolResult `json:"results"`
}

// runTools runs each tool call of a verified delivery with the org's own
// credentials and returns Vapi's results body. A tool that fails answers
// with a result explaining why; nothing here fails the webhook. It appends
// "name:outcome" for each call to log, without arguments or results.
func (h *Handler) runTools(ctx context.Context, orgID string, calls []toolCall, log *[]string) toolResults {
	out := toolResults{Results: make([]toolResult, 0, len(calls))}
	for i, tc := range calls {
		name := clip(tc.Name, 64)
		if i == maxToolCallsPerEvent {
			out.Results = append(out.Results, toolResult{ToolCallID: tc.ID, Name: name,
				Result: fmt.Sprintf("Too many tool calls in one request: at most %d are run.", maxToolCallsPerEvent)})
			*log = append(*log, name+":skipped")
			continue
		}
		tctx, cancel := context.WithTimeout(ctx, h.opts.ToolTimeout)
		result, outcome := h.runTool(tctx, orgID, name, tc.Args)
		cancel()
		out.Results = append(out.Results, toolResult{ToolCallID: tc.ID, Name: name, Result: result})
		*log = append(*log, name+":"+outcome)
	}
	return out
}

// runTool runs one tool and returns its result and a short outcome for the log.
func (h *Handler) runTool(ctx context.Context, orgID, name string, args json.RawMessage) (result, outcome string) {
	switch name {
	case ToolSendSMS:
		return h.sendSMS(ctx, orgID, args)
	case ToolCheckAvailability:
		return h.checkAvailability(ctx, orgID, args)
	case ToolBookAppointment:
		return h.bookAppointment(ctx, orgID, args)
	case "":
		return "The tool call names no tool.", "unknown"
	}
	return fmt.Sprintf("There is no tool called %q on this server.", name), "unknown"
}

// decodeArgs reads a tool's arguments object into v.
func decodeArgs(tool string, args json.RawMessage, v any) (string, bool) {
	if args == nil || json.Unmarshal(args, v) != nil {
		return fmt.Sprintf("The arguments of %s could not be read: they must be a JSON object with the documented fields.", tool), false
	}
	return "", true
}

func (h *Handler) sendSMS(ctx context.Context, orgID string, raw json.RawMessage) (string, string) {
	var args struct {
		To      string `json:"to"`
		Body    string `json:"body"`
		Channel string `json:"channel"`
	}
	if msg, ok := decodeArgs(ToolSendSMS, raw, &args); !ok {
		return msg, "bad_arguments"
	}
	channel := twilio.Channel(strings.ToLower(strings.TrimSpace(args.Channel)))
	switch channel {
	case "":
		channel = twilio.SMS
	case twilio.SMS, twilio.WhatsApp:
	default:
		return `The message was not sent: the channel must be "sms" or "whatsapp".`, "bad_arguments"
	}
	what := "SMS"
	if channel == twilio.WhatsApp {
		what = "WhatsApp message"
	}
	to, err := twilio.NormalizeE164(strings.TrimPrefix(strings.TrimSpace(args.To), "whatsapp:"), h.opts.DefaultPhoneRegion)
	if err != nil {
		return "The " + what + " was not sent: the recipient's phone number is not valid. " +
			"Ask for the number in international format, such as +12025550123.", "bad_arguments"
	}
	if strings.TrimSpace(args.Body) == "" {
		return "The " + what + " was not sent: the message text is empty.", "bad_arguments"
	}
	if h.deps.Twilio == nil {
		return "The " + what + " was not sent: sending messages is not available on this server.", "unavailable"
	}
	h.stats.storeCalls.Add(1)
	cfg, err := h.deps.Credentials.Twilio(ctx, orgID)
	if err != nil {
		if app.ErrorCode(err) == app.ENotConfigured {
			return resultTwilioNotConnected, "not_connected"
		}
		return "The " + what + " was not sent: the organization's Twilio settings could not be read just now. " +
			"Please try again later.", "error"
	}
	if _, err := h.deps.Twilio.SendMessage(ctx, cfg, twilio.Message{To: to, Body: args.Body, Channel: channel}); err != nil {
		return "The " + what + " was not sent: " + explain(err), app.ErrorCode(err)
	}
	return fmt.Sprintf("The %s to %s was sent.", what, twilio.MaskPhone(to)), "sent"
}

func (h *Handler) checkAvailability(ctx context.Context, orgID string, raw json.RawMessage) (string, string) {
	if h.deps.Calendar == nil {
		return resultCalendarNotConnected, "not_connected"
	}
	var args struct {
		Start string `json:"start"`
		End   string `json:"end"`
	}
	if msg, ok := decodeArgs(ToolCheckAvailability, raw, &args); !ok {
		return msg, "bad_arguments"
	}
	start, end, msg := period(args.Start, args.End)
	if msg != "" {
		return "Availability could not be checked: " + msg, "bad_arguments"
	}
	busy, err := h.deps.Calendar.FreeBusy(ctx, orgID, start, end)
	if err != nil {
		if app.ErrorCode(err) == app.ENotConfigured {
			return resultCalendarNotConnected, "not_connected"
		}
		return "Availability could not be checked: " + explain(err), app.ErrorCode(err)
	}
	if len(busy) == 0 {
		return fmt.Sprintf("The calendar is free from %s to %s.", stamp(start), stamp(end)), "free"
	}
	parts := make([]string, 0, len(busy))
	for _, b := range busy {
		parts = append(parts, stamp(b.Start)+" to "+stamp(b.End))
	}
	return fmt.Sprintf("The calendar is not free from %s to %s; it is busy from %s.",
		stamp(start), stamp(end), strings.Join(parts, ", and from ")), "busy"
}

func (h *Handler) bookAppointment(ctx context.Context, orgID string, raw json.RawMessage) (string, string) {
	if h.deps.Calendar == nil {
		return resultCalendarNotConnected, "not_connected"
	}
	var args struct {
		Start         string `json:"start"`
		End           string `json:"end"`
		Summary       string `json:"summary"`
		AttendeeEmail string `json:"attendeeEmail"`
	}
	if msg, ok := decodeArgs(ToolBookAppointment, raw, &args); !ok {
		return msg, "bad_arguments"
	}
	start, end, msg := period(args.Start, args.End)
	if msg != "" {
		return "The appointment was not booked: " + msg, "bad_arguments"
	}
	summary := strings.TrimSpace(args.Summary)
	if summary == "" {
		summary = "Appointment"
	}
	email := strings.TrimSpace(args.AttendeeEmail)
	if email != "" && (len(email) > 254 || !strings.Contains(email, "@") || strings.ContainsAny(email, " \t\r\n<>,;")) {
		return "The appointment was not booked: the attendee's email address is not valid.", "bad_arguments"
	}
	_, err := h.deps.Calendar.Book(ctx, orgID, Booking{Start: start, End: end, Summary: clip(summary, 200), AttendeeEmail: email})
	if err != nil {
		if app.ErrorCode(err) == app.ENotConfigured {
			return resultCalendarNotConnected, "not_connected"
		}
		return "The appointment was not booked: " + explain(err), app.ErrorCode(err)
	}
	return fmt.Sprintf("The appointment %q is booked from %s to %s.", clip(summary, 200), stamp(start), stamp(end)), "booked"
}

// period reads a start and end in RFC 3339 and checks that they make a
// sensible period; the message says what is wrong, "" when nothing is.
func period(startS, endS string) (start, end time.Time, msg string) {
	start, err1 := time.Parse(time.RFC3339, strings.TrimSpace(startS))
	end, err2 := time.Parse(time.RFC3339, strings.TrimSpace(endS))
	switch {
	case err1 != nil || err2 != nil:
		return start, end, "start and end must be dates with a time and time zone, such as 2030-05-06T14:00:00+02:00."
	case !end.After(start):
		return start, end, "the end must be after the start."
	case end.Sub(start) > maxCalendarSpan:
		return start, end, "the period may be at most 31 days long."
	}
	return start, end, ""
}

func stamp(t time.Time) string { return t.Format(time.RFC3339) }

// explain turns a provider error into a sentence for the assistant: the
// error's safe message, with per-field messages when it has them. Internal
// causes never appear.
func explain(err error) string {
	msg := app.ErrorMessage(err)
	fields := app.ErrorFields(err)
	if len(fields) == 0 {
		return msg
	}
	parts := make([]string, 0, len(fields))
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		parts = append(parts, fields[k])
	}
	return strings.Join(parts, " ")
}
