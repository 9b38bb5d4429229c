package webhooks

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/mail"
	"slices"
	"strings"
	"sync"
	"time"

	"byoc/app"
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
	resultCalendarReconnect    = "Google Calendar needs to be reconnected for this organization: Google no longer accepts " +
		"its stored authorization. An administrator must connect Google Calendar again in the dashboard."
	resultTwilioNotConnected = "Twilio is not connected for this organization, so no message was sent."
)

// Limits of the calendar tools: the longest period check_availability looks
// at, the longest appointment book_appointment makes, the longest title (in
// bytes) it gives one and the title of an appointment given none.
const (
	maxCalendarSpan     = 31 * 24 * time.Hour
	maxAppointmentSpan  = 8 * time.Hour
	maxSummaryBytes     = 200
	defaultBookingTitle = "Appointment"
)

// Calendar reads and books the org's primary Google Calendar with the org's
// own grant; *google.Calendar implements it. Without one the handler's
// calendar tools answer that the calendar is not connected. Errors are app
// errors whose messages are safe to read to a caller: ENotConfigured when
// the org has no calendar connected (or the server no Google client),
// EVerificationFailed when Google refuses the stored authorization (the org
// must reconnect), EValidation for a request the calendar refuses,
// EProviderUnavailable and EUnavailable when Google cannot be used right
// now, and EInternal.
type Calendar interface {
	// FreeBusy returns the busy periods of the org's primary calendar
	// within [start, end), merged and in order.
	FreeBusy(ctx context.Context, orgID string, start, end time.Time) ([]app.Busy, error)
	// Book creates the event b on the org's primary calendar (inviting
	// b.AttendeeEmail when set) and returns its event id and its link in
	// Google Calendar.
	Book(ctx context.Context, orgID string, b app.Booking) (eventID, htmlLink string, err error)
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

// maxConcurrentTools is how many tool calls of one delivery run at once.
const maxConcurrentTools = 4

// Results of a tool call that ran out of time: one that never started, and
// one that started but did not finish (whose effect, such as a message sent
// or an appointment booked, may still have happened).
const (
	resultNotStarted = "The tool %q timed out: it was not run because this request ran out of time. " +
		"Please try again."
	resultTimedOut = "The tool %q timed out: it did not finish in time, so whether it took effect is unknown. " +
		"Check before trying again."
)

// runTools runs the tool calls of a verified delivery with the org's own
// credentials and returns Vapi's results body, one result per call in the
// order of the calls (the calls over maxToolCallsPerEvent are not run:
// their results say so). The calls run concurrently, at most
// maxConcurrentTools at once, except book_appointment calls, which run one
// after another in order (so that one delivery cannot book one slot twice).
// Each call is bounded by ToolTimeout and all of them by deadline: a call
// that does not finish by then, or cannot start before it, is answered with
// a result saying it timed out. A tool that fails answers with a result
// explaining why; nothing here fails the webhook. It appends "name:outcome"
// for each call within the cap to log, and one count of the calls over it,
// without arguments or results.
func (h *Handler) runTools(ctx context.Context, deadline time.Time, orgID string, calls []toolCall, log *[]string) toolResults {
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	results := make([]toolResult, len(calls))
	outcomes := make([]string, len(calls))

	// lanes are the calls to run, each lane one after another.
	var lanes [][]int
	bookings := -1
	for i, tc := range calls {
		name := clip(tc.Name, 64)
		results[i] = toolResult{ToolCallID: tc.ID, Name: name}
		switch {
		case i >= maxToolCallsPerEvent:
			results[i].Result = fmt.Sprintf("Too many tool calls in one request: at most %d are run.", maxToolCallsPerEvent)
			outcomes[i] = "skipped"
		case name == ToolBookAppointment && bookings >= 0:
			lanes[bookings] = append(lanes[bookings], i)
		default:
			if name == ToolBookAppointment {
				bookings = len(lanes)
			}
			lanes = append(lanes, []int{i})
		}
	}

	sem := make(chan struct{}, maxConcurrentTools)
	var wg sync.WaitGroup
	for _, lane := range lanes {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			for _, i := range lane {
				results[i].Result, outcomes[i] = fmt.Sprintf(resultNotStarted, results[i].Name), "timeout"
			}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			for _, i := range lane {
				results[i].Result, outcomes[i] = h.runToolWithin(ctx, orgID, results[i].Name, calls[i].Args)
			}
		}()
	}
	wg.Wait()
	for i := range min(len(results), maxToolCallsPerEvent) {
		*log = append(*log, results[i].Name+":"+outcomes[i])
	}
	if over := len(results) - maxToolCallsPerEvent; over > 0 {
		*log = append(*log, fmt.Sprintf("%d more:skipped", over))
	}
	return toolResults{Results: results}
}

// runToolWithin runs one tool within ToolTimeout and what is left of ctx.
// When time runs out first it answers that the tool timed out without
// waiting for it (the tool's context is cancelled, so it stops soon).
func (h *Handler) runToolWithin(ctx context.Context, orgID, name string, args json.RawMessage) (result, outcome string) {
	if ctx.Err() != nil {
		return fmt.Sprintf(resultNotStarted, name), "timeout"
	}
	ctx, cancel := context.WithTimeout(ctx, h.opts.ToolTimeout)
	defer cancel()
	type ran struct{ result, outcome string }
	done := make(chan ran, 1)
	go func() {
		r, o := h.runTool(ctx, orgID, name, args)
		done <- ran{r, o}
	}()
	select {
	case r := <-done:
		return r.result, r.outcome
	case <-ctx.Done():
		select {
		case r := <-done: // finished just as time ran out
			return r.result, r.outcome
		default:
		}
		return fmt.Sprintf(resultTimedOut, name), "timeout"
	}
}

// resultHandledBefore answers each tool call of a delivery another instance
// (or this one, before it forgot) already handled.
const resultHandledBefore = "This request was already handled and its tool calls were not run again; " +
	"the first answer to it is the one that counts."

// handledBefore is the answer to a tool-calls delivery already claimed
// whose results this instance does not remember: one result per tool call.
func handledBefore(calls []toolCall) toolResults {
	out := toolResults{Results: make([]toolResult, 0, len(calls))}
	for _, tc := range calls {
		out.Results = append(out.Results, toolResult{ToolCallID: tc.ID, Name: clip(tc.Name, 64), Result: resultHandledBefore})
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
	channel := app.Channel(strings.ToLower(strings.TrimSpace(args.Channel)))
	switch channel {
	case "":
		channel = app.ChannelSMS
	case app.ChannelSMS, app.ChannelWhatsApp:
	default:
		return `The message was not sent: the channel must be "sms" or "whatsapp".`, "bad_arguments"
	}
	what := "SMS"
	if channel == app.ChannelWhatsApp {
		what = "WhatsApp message"
	}
	to, err := app.NormalizeE164(strings.TrimPrefix(strings.TrimSpace(args.To), "whatsapp:"), h.opts.DefaultPhoneRegion)
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
	if _, err := h.deps.Twilio.SendMessage(ctx, cfg, app.Message{To: to, Body: args.Body, Channel: channel}); err != nil {
		if app.ErrorCode(err) == app.EVerificationFailed {
			h.recordRefusal(ctx, orgID, app.Twilio, err)
		}
		return "The " + what + " was not sent: " + explain(err), app.ErrorCode(err)
	}
	return fmt.Sprintf("The %s to %s was sent.", what, app.MaskPhone(to)), "sent"
}

// checkAvailability answers whether [start, end) is free on the org's
// calendar, or which busy periods overlap it.
func (h *Handler) checkAvailability(ctx context.Context, orgID string, raw json.RawMessage) (string, string) {
	const failed = "Availability could not be checked: "
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
	start, end, msg := period(args.Start, args.End, maxCalendarSpan, "the period")
	if msg != "" {
		return failed + msg, "bad_arguments"
	}
	busy, err := h.deps.Calendar.FreeBusy(ctx, orgID, start, end)
	if err != nil {
		return calendarFailure(failed, err)
	}
	if len(busy) == 0 {
		return fmt.Sprintf("The calendar is free from %s to %s.", stamp(start, start), stamp(end, start)), "free"
	}
	return fmt.Sprintf("The calendar is not free from %s to %s; it is busy %s.",
		stamp(start, start), stamp(end, start), busyList(busy, start)), "busy"
}

// bookAppointment books [start, end) on the org's calendar when the slot is
// free. The check and the booking are two calls to Google: a booking made
// elsewhere in between is not noticed.
func (h *Handler) bookAppointment(ctx context.Context, orgID string, raw json.RawMessage) (string, string) {
	const failed = "The appointment was not booked: "
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
	start, end, msg := period(args.Start, args.End, maxAppointmentSpan, "an appointment")
	if msg != "" {
		return failed + msg, "bad_arguments"
	}
	summary := clip(strings.Join(strings.Fields(args.Summary), " "), maxSummaryBytes)
	if summary == "" {
		summary = defaultBookingTitle
	}
	email := strings.TrimSpace(args.AttendeeEmail)
	if email != "" {
		if a, err := mail.ParseAddress(email); err != nil || a.Address != email || len(email) > 254 {
			return failed + "the attendee's email address is not valid. Ask for it again, such as pat@example.com.", "bad_arguments"
		}
	}
	busy, err := h.deps.Calendar.FreeBusy(ctx, orgID, start, end)
	if err != nil {
		return calendarFailure(failed, err)
	}
	if len(busy) > 0 {
		return fmt.Sprintf("%sthe time from %s to %s is not free; the calendar is busy %s. Offer the caller another time.",
			failed, stamp(start, start), stamp(end, start), busyList(busy, start)), "busy"
	}
	_, link, err := h.deps.Calendar.Book(ctx, orgID, app.Booking{Start: start, End: end, Summary: summary, AttendeeEmail: email})
	if err != nil {
		return calendarFailure(failed, err)
	}
	out := fmt.Sprintf("Booked: %s from %s to %s.", summary, stamp(start, start), stamp(end, start))
	if email != "" {
		out += " An invitation goes to " + email + "."
	}
	if link != "" {
		out += " Event link: " + link
	}
	return out, "booked"
}

// calendarFailure turns an error of the Calendar into a tool result that
// begins with failed (except for the complete not-connected answer) and a
// short outcome for the log.
func calendarFailure(failed string, err error) (string, string) {
	switch code := app.ErrorCode(err); code {
	case app.ENotConfigured:
		return resultCalendarNotConnected, "not_connected"
	case app.EVerificationFailed:
		return failed + resultCalendarReconnect, "reconnect_needed"
	case app.EProviderUnavailable, app.EUnavailable:
		return failed + explain(err) + " Please try again later or offer to take a message.", code
	default:
		return failed + explain(err), code
	}
}

// period reads a start and end in RFC 3339 and checks that they make a
// sensible period of at most maxSpan (what names it in the message); the
// message says what is wrong, "" when nothing is.
func period(startS, endS string, maxSpan time.Duration, what string) (start, end time.Time, msg string) {
	start, err1 := time.Parse(time.RFC3339, strings.TrimSpace(startS))
	end, err2 := time.Parse(time.RFC3339, strings.TrimSpace(endS))
	switch {
	case err1 != nil || err2 != nil:
		return start, end, "start and end must be dates with a time and time zone, such as 2030-05-06T14:00:00+02:00."
	case !end.After(start):
		return start, end, "the end must be after the start."
	case end.Sub(start) > maxSpan:
		return start, end, what + " may be at most " + spanWords(maxSpan) + " long."
	}
	return start, end, ""
}

// spanWords says a limit in days or hours.
func spanWords(d time.Duration) string {
	if d >= 24*time.Hour && d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%d days", d/(24*time.Hour))
	}
	return fmt.Sprintf("%d hours", d/time.Hour)
}

// busyList lists busy periods as "from A to B, and from C to D", in the
// offset of ref (the caller's own).
func busyList(busy []app.Busy, ref time.Time) string {
	parts := make([]string, 0, len(busy))
	for _, b := range busy {
		parts = append(parts, "from "+stamp(b.Start, ref)+" to "+stamp(b.End, ref))
	}
	return strings.Join(parts, ", and ")
}

// stamp formats t in RFC 3339 in the time zone of ref, so that every time of
// one answer carries the offset the caller used.
func stamp(t, ref time.Time) string { return t.In(ref.Location()).Format(time.RFC3339) }

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

// succeededOutcomes are the log outcomes of a tool call that did what it
// was asked (a busy calendar is an answer, not a failure).
var succeededOutcomes = map[string]bool{"sent": true, "free": true, "busy": true, "booked": true}

// toolSucceeded reports whether a "name:outcome" entry of runTools' log is
// a success.
func toolSucceeded(entry string) bool {
	i := strings.LastIndexByte(entry, ':')
	return i >= 0 && succeededOutcomes[entry[i+1:]]
}

// recordRefusal records that provider refused the org's stored credentials
// (err, an EVerificationFailed) while a tool used them. A failure to record
// is logged: the tool's result already says what happened.
func (h *Handler) recordRefusal(ctx context.Context, orgID string, p app.Provider, err error) {
	if h.deps.ProviderRefusals == nil {
		return
	}
	at := h.opts.Now().UTC().Truncate(time.Microsecond)
	if _, rerr := h.deps.ProviderRefusals.RecordVerification(ctx, orgID, p, at, err); rerr != nil {
		h.log.WarnContext(ctx, "recording the provider's refusal failed", "org_id", orgID, "provider", p, "code", app.ErrorCode(rerr))
	}
}
