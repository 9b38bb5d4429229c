package webhooks_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"byoc/app"
	"byoc/app/sandbox"
	"byoc/app/webhooks"
)

var orgTwilio = app.TwilioConfig{
	AccountSID:     "AC0123456789abcdef0123456789abcdef",
	AuthToken:      app.NewSecret("twilio-auth-token-7c6b5a4f"),
	PhoneNumber:    "+12025550100",
	WhatsAppNumber: "+14155238886",
}

// toolCall is one entry of a tool-calls message; args is encoded as an
// object, or as a string holding the object when asString is set.
type tc struct {
	id, name string
	args     any
	asString bool
}

func toolCallsBody(t testing.TB, assistantID string, ts int64, calls ...tc) []byte {
	t.Helper()
	list := make([]map[string]any, 0, len(calls))
	for _, c := range calls {
		var args any = c.args
		if c.asString {
			b, _ := json.Marshal(c.args)
			args = string(b)
		}
		list = append(list, map[string]any{"id": c.id, "type": "function", "function": map[string]any{"name": c.name, "arguments": args}})
	}
	return msg("tool-calls", assistantID, map[string]any{"timestamp": ts, "toolCallList": list})
}

type result struct {
	ToolCallID string `json:"toolCallId"`
	Name       string `json:"name"`
	Result     string `json:"result"`
}

func results(t testing.TB, r webhooks.Response) []result {
	t.Helper()
	if r.Status != http.StatusOK {
		t.Fatalf("tool-calls answered %d %s", r.Status, encode(t, r.Body))
	}
	var out struct {
		Results []result `json:"results"`
	}
	if err := json.Unmarshal([]byte(encode(t, r.Body)), &out); err != nil {
		t.Fatal(err)
	}
	return out.Results
}

func TestToolCalls(t *testing.T) {
	e := newEnv(t)
	o := e.newOrg("tools-secret-1234567890")
	e.setTwilio(o.id, orgTwilio)
	ts := time.Now().UnixMilli()
	next := func() int64 { ts++; return ts }

	t.Run("send_sms from the org's number with the org's account", func(t *testing.T) {
		r := results(t, e.handle(o.secret, toolCallsBody(t, o.assistant, next(),
			tc{id: "call_1", name: "send_sms", args: map[string]any{"to": "(202) 555-0123", "body": "See you at 3pm."}})))
		if len(r) != 1 || r[0].ToolCallID != "call_1" || r[0].Name != "send_sms" || !strings.Contains(r[0].Result, "was sent") {
			t.Fatalf("results %+v", r)
		}
		msgs := e.sb.Twilio.Messages()
		if len(msgs) != 1 {
			t.Fatalf("%d messages at the stand-in, want 1", len(msgs))
		}
		want := sandbox.TwilioMessage{SID: msgs[0].SID, AccountSID: orgTwilio.AccountSID, AuthToken: orgTwilio.AuthToken.Reveal(),
			From: "+12025550100", To: "+12025550123", Body: "See you at 3pm.", Channel: "sms"}
		if msgs[0] != want {
			t.Errorf("stand-in got %+v, want %+v", msgs[0], want)
		}
	})

	t.Run("send_sms over WhatsApp with arguments as a string", func(t *testing.T) {
		r := results(t, e.handle(o.secret, toolCallsBody(t, o.assistant, next(),
			tc{id: "call_2", name: "send_sms", args: map[string]any{"to": "+44 7911 123456", "body": "Hi", "channel": "whatsapp"}, asString: true})))
		if len(r) != 1 || !strings.Contains(r[0].Result, "WhatsApp message") || !strings.Contains(r[0].Result, "was sent") {
			t.Fatalf("results %+v", r)
		}
		msgs := e.sb.Twilio.Messages()
		last := msgs[len(msgs)-1]
		if last.From != "whatsapp:+14155238886" || last.To != "whatsapp:+447911123456" || last.Channel != "whatsapp" ||
			last.AccountSID != orgTwilio.AccountSID {
			t.Errorf("stand-in got %+v", last)
		}
	})

	t.Run("several tools in one delivery", func(t *testing.T) {
		sent := len(e.sb.Twilio.Messages())
		r := results(t, e.handle(o.secret, toolCallsBody(t, o.assistant, next(),
			tc{id: "a", name: "check_availability", args: map[string]any{"start": "2030-05-06T14:00:00Z", "end": "2030-05-06T15:00:00Z"}},
			tc{id: "b", name: "book_appointment", args: map[string]any{"start": "2030-05-06T14:00:00Z", "end": "2030-05-06T15:00:00Z", "summary": "Haircut"}},
			tc{id: "c", name: "order_pizza", args: map[string]any{}},
			tc{id: "d", name: "send_sms", args: map[string]any{"to": "not a number", "body": "x"}},
			tc{id: "e", name: "send_sms", args: map[string]any{"to": "+12025550123", "body": "x", "channel": "pigeon"}},
			tc{id: "f", name: "send_sms", args: map[string]any{"to": "+12025550123", "body": "  "}},
			tc{id: "g", name: "send_sms", args: "[1,2]", asString: true},
		)))
		want := []struct{ id, name, contains string }{
			{"a", "check_availability", "Google Calendar is not connected for this organization."},
			{"b", "book_appointment", "Google Calendar is not connected for this organization."},
			{"c", "order_pizza", `no tool called "order_pizza"`},
			{"d", "send_sms", "phone number is not valid"},
			{"e", "send_sms", "channel must be"},
			{"f", "send_sms", "text is empty"},
			{"g", "send_sms", "could not be read"},
		}
		if len(r) != len(want) {
			t.Fatalf("%d results, want %d: %+v", len(r), len(want), r)
		}
		for i, w := range want {
			if r[i].ToolCallID != w.id || r[i].Name != w.name || !strings.Contains(r[i].Result, w.contains) {
				t.Errorf("result %d = %+v, want %s/%s containing %q", i, r[i], w.id, w.name, w.contains)
			}
		}
		if n := len(e.sb.Twilio.Messages()); n != sent {
			t.Errorf("%d messages sent by failing tools", n-sent)
		}
	})

	t.Run("a repeated delivery replays the results and sends nothing twice", func(t *testing.T) {
		body := toolCallsBody(t, o.assistant, next(), tc{id: "x", name: "send_sms", args: map[string]any{"to": "+12025550123", "body": "once"}})
		sent := len(e.sb.Twilio.Messages())
		first := results(t, e.handle(o.secret, body))
		second := results(t, e.handle(o.secret, body))
		if len(first) != 1 || len(second) != 1 || first[0] != second[0] {
			t.Errorf("first %+v, second %+v; want the same results", first, second)
		}
		if n := len(e.sb.Twilio.Messages()) - sent; n != 1 {
			t.Errorf("%d messages sent, want 1", n)
		}
	})

	t.Run("concurrent copies send once", func(t *testing.T) {
		body := toolCallsBody(t, o.assistant, next(), tc{id: "y", name: "send_sms", args: map[string]any{"to": "+12025550123", "body": "once"}})
		sent := len(e.sb.Twilio.Messages())
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if r := results(t, e.handle(o.secret, body)); len(r) != 1 || !strings.Contains(r[0].Result, "was sent") {
					t.Errorf("results %+v", r)
				}
			}()
		}
		wg.Wait()
		if n := len(e.sb.Twilio.Messages()) - sent; n != 1 {
			t.Errorf("%d messages sent, want 1", n)
		}
	})
}

func TestToolCallsTwilioProblems(t *testing.T) {
	e := newEnv(t)
	notConnected := e.newOrg("no-twilio-secret-1234567")
	down := e.newOrg("down-twilio-secret-123456")
	cfg := orgTwilio
	cfg.AuthToken = app.NewSecret("token-down-1234")
	e.setTwilio(down.id, cfg)
	noWhatsApp := e.newOrg("no-wa-secret-1234567890")
	cfg = orgTwilio
	cfg.WhatsAppNumber = ""
	e.setTwilio(noWhatsApp.id, cfg)
	invalid := e.newOrg("invalid-twilio-secret-12")
	cfg = orgTwilio
	cfg.AuthToken = app.NewSecret("token-invalid-99")
	e.setTwilio(invalid.id, cfg)

	tests := []struct {
		name     string
		o        org
		args     map[string]any
		contains string
	}{
		{"Twilio not connected", notConnected, map[string]any{"to": "+12025550123", "body": "x"}, "Twilio is not connected for this organization"},
		{"Twilio down", down, map[string]any{"to": "+12025550123", "body": "x"}, "was not sent"},
		{"no WhatsApp number", noWhatsApp, map[string]any{"to": "+12025550123", "body": "x", "channel": "whatsapp"}, "No number to send from"},
		{"credentials refused", invalid, map[string]any{"to": "+12025550123", "body": "x"}, "rejected the Account SID and Auth Token"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := e.handle(tt.o.secret, toolCallsBody(t, tt.o.assistant, int64(1_900_000_000_000+i), tc{id: "t", name: "send_sms", args: tt.args}))
			r := results(t, resp)
			if len(r) != 1 || !strings.Contains(r[0].Result, tt.contains) {
				t.Fatalf("results %+v, want one containing %q", r, tt.contains)
			}
			for _, secret := range []string{"token-down-1234", "token-invalid-99", orgTwilio.AuthToken.Reveal()} {
				if strings.Contains(encode(t, resp.Body), secret) {
					t.Errorf("result reveals a Twilio token")
				}
			}
		})
	}
	if n := len(e.sb.Twilio.Messages()); n != 0 {
		t.Errorf("%d messages sent", n)
	}

	t.Run("no Twilio client on this server", func(t *testing.T) {
		e2 := newEnv(t, func(c *envConfig) { c.noTwilio = true })
		o := e2.newOrg("no-client-secret-12345678")
		r := results(t, e2.handle(o.secret, toolCallsBody(t, o.assistant, 1, tc{id: "t", name: "send_sms", args: map[string]any{"to": "+12025550123", "body": "x"}})))
		if len(r) != 1 || !strings.Contains(r[0].Result, "not available on this server") {
			t.Errorf("results %+v", r)
		}
	})
}

// fakeCalendar stands in for the Google Calendar integration.
type fakeCalendar struct {
	mu     sync.Mutex
	busy   []app.Busy
	booked []app.Booking
	err    error
}

func (f *fakeCalendar) FreeBusy(_ context.Context, _ string, start, end time.Time) ([]app.Busy, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []app.Busy
	for _, b := range f.busy {
		if b.Start.Before(end) && b.End.After(start) {
			out = append(out, b)
		}
	}
	return out, f.err
}

func (f *fakeCalendar) Book(_ context.Context, _ string, b app.Booking) (string, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return "", "", f.err
	}
	f.booked = append(f.booked, b)
	return "evt_1", "https://calendar.example.test/evt_1", nil
}

func TestCalendarTools(t *testing.T) {
	at := func(s string) time.Time { v, _ := time.Parse(time.RFC3339, s); return v }
	cal := &fakeCalendar{busy: []app.Busy{{Start: at("2030-05-06T14:30:00Z"), End: at("2030-05-06T15:00:00Z")}}}
	e := newEnv(t, withCalendar(cal))
	o := e.newOrg("calendar-secret-12345678")
	tests := []struct {
		name, tool string
		args       map[string]any
		err        error
		contains   string
	}{
		{"free", "check_availability", map[string]any{"start": "2030-05-06T09:00:00Z", "end": "2030-05-06T10:00:00Z"}, nil, "is free from 2030-05-06T09:00:00Z to 2030-05-06T10:00:00Z"},
		{"busy", "check_availability", map[string]any{"start": "2030-05-06T14:00:00Z", "end": "2030-05-06T16:00:00Z"}, nil, "busy from 2030-05-06T14:30:00Z to 2030-05-06T15:00:00Z"},
		{"busy in the caller's offset", "check_availability", map[string]any{"start": "2030-05-06T16:00:00+02:00", "end": "2030-05-06T18:00:00+02:00"}, nil, "busy from 2030-05-06T16:30:00+02:00 to 2030-05-06T17:00:00+02:00"},
		{"end before start", "check_availability", map[string]any{"start": "2030-05-06T10:00:00Z", "end": "2030-05-06T09:00:00Z"}, nil, "end must be after the start"},
		{"no time zone", "check_availability", map[string]any{"start": "2030-05-06 10:00", "end": "2030-05-06 11:00"}, nil, "time zone"},
		{"too long", "check_availability", map[string]any{"start": "2030-05-06T10:00:00Z", "end": "2030-07-06T10:00:00Z"}, nil, "31 days"},
		{"book", "book_appointment", map[string]any{"start": "2030-05-07T10:00:00+02:00", "end": "2030-05-07T10:30:00+02:00", "summary": "Consultation", "attendeeEmail": "pat@example.com"}, nil, "Booked: Consultation from 2030-05-07T10:00:00+02:00 to 2030-05-07T10:30:00+02:00. An invitation goes to pat@example.com. Event link: https://calendar.example.test/evt_1"},
		{"book a busy slot", "book_appointment", map[string]any{"start": "2030-05-06T14:45:00Z", "end": "2030-05-06T15:15:00Z"}, nil, "not booked: the time from 2030-05-06T14:45:00Z to 2030-05-06T15:15:00Z is not free; the calendar is busy from 2030-05-06T14:30:00Z to 2030-05-06T15:00:00Z"},
		{"book too long", "book_appointment", map[string]any{"start": "2030-05-07T08:00:00Z", "end": "2030-05-07T16:30:00Z"}, nil, "an appointment may be at most 8 hours long"},
		{"book end before start", "book_appointment", map[string]any{"start": "2030-05-07T10:00:00Z", "end": "2030-05-07T09:00:00Z"}, nil, "end must be after the start"},
		{"book unparsable", "book_appointment", map[string]any{"start": "tomorrow at 10", "end": "tomorrow at 11"}, nil, "time zone"},
		{"book with a bad email", "book_appointment", map[string]any{"start": "2030-05-07T10:00:00Z", "end": "2030-05-07T10:30:00Z", "attendeeEmail": "pat at example"}, nil, "email address is not valid"},
		{"grant revoked", "book_appointment", map[string]any{"start": "2030-05-07T10:00:00Z", "end": "2030-05-07T10:30:00Z"}, app.Errorf(app.ENotConfigured, "x"), "Google Calendar is not connected"},
		{"reconnect needed", "book_appointment", map[string]any{"start": "2030-05-07T10:00:00Z", "end": "2030-05-07T10:30:00Z"}, app.Errorf(app.EVerificationFailed, "x"), "needs to be reconnected"},
		{"Google refuses the booking", "book_appointment", map[string]any{"start": "2030-05-07T10:00:00Z", "end": "2030-05-07T10:30:00Z"}, app.ValidationError(map[string]string{"summary": "Give the appointment a title."}), "not booked: Give the appointment a title."},
		{"Google down", "check_availability", map[string]any{"start": "2030-05-07T10:00:00Z", "end": "2030-05-07T10:30:00Z"}, app.Errorf(app.EProviderUnavailable, "Google Calendar could not be reached."), "Google Calendar could not be reached."},
		{"internal error stays generic", "check_availability", map[string]any{"start": "2030-05-07T10:00:00Z", "end": "2030-05-07T10:30:00Z"}, app.Internal(errSecretCause), "Something went wrong"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cal.mu.Lock()
			cal.err = tt.err
			cal.mu.Unlock()
			resp := e.handle(o.secret, toolCallsBody(t, o.assistant, int64(1_800_000_000_000+i), tc{id: "c", name: tt.tool, args: tt.args}))
			r := results(t, resp)
			if len(r) != 1 || !strings.Contains(r[0].Result, tt.contains) {
				t.Errorf("results %+v, want one containing %q", r, tt.contains)
			}
			if strings.Contains(encode(t, resp.Body), errSecretCause.Error()) {
				t.Error("an internal cause reached the result")
			}
		})
	}
	if len(cal.booked) != 1 || cal.booked[0].Summary != "Consultation" || cal.booked[0].AttendeeEmail != "pat@example.com" ||
		!cal.booked[0].Start.Equal(at("2030-05-07T08:00:00Z")) {
		t.Errorf("booked %+v", cal.booked)
	}
}

var errSecretCause = &app.Error{Code: app.EInternal, Message: "pq: connection to 10.0.0.7 refused"}

// TestTooManyToolCalls: every tool call of a delivery gets a result with
// its own id, in order; the calls over the cap are not run and their
// results say why.
func TestTooManyToolCalls(t *testing.T) {
	e := newEnv(t)
	o := e.newOrg("many-tools-secret-123456")
	calls := make([]tc, 25)
	for i := range calls {
		calls[i] = tc{id: fmt.Sprintf("call_%02d", i), name: "check_availability", args: map[string]any{}}
	}
	r := results(t, e.handle(o.secret, toolCallsBody(t, o.assistant, 5, calls...)))
	if len(r) != len(calls) {
		t.Fatalf("%d results for %d tool calls, want one each", len(r), len(calls))
	}
	for i, res := range r {
		if res.ToolCallID != calls[i].id || res.Name != "check_availability" {
			t.Errorf("result %d is %+v, want the result of %s", i, res, calls[i].id)
		}
		over := strings.Contains(res.Result, "Too many tool calls in one request: at most 20 are run")
		if over != (i >= 20) {
			t.Errorf("result %d: %q; want the first 20 run and the rest refused as over the cap", i, res.Result)
		}
	}
	if lines := strings.Count(e.logs.String(), "check_availability:"); lines > 21 {
		t.Errorf("the log lists %d tool outcomes, want the calls over the cap summed up", lines)
	}
}

// TestLogsCarryNoSecretsOrPersonalData runs a busy mix of webhooks in
// debug mode and checks every log line.
func TestLogsCarryNoSecretsOrPersonalData(t *testing.T) {
	const def = "default-secret-for-logs-1"
	e := newEnv(t, withOptions(webhooks.Options{Debug: true, DefaultSecret: app.NewSecret(def)}))
	o := e.newOrg("log-secret-abcdef123456")
	e.setTwilio(o.id, orgTwilio)
	now := time.Now()
	personal := []string{"+12025550123", "2025550123", "Meet me at the back door", "my card is 4111"}
	bodies := [][]byte{
		toolCallsBody(t, o.assistant, now.UnixMilli(), tc{id: "s", name: "send_sms", args: map[string]any{"to": "+12025550123", "body": "Meet me at the back door"}}),
		toolCallsBody(t, o.assistant, now.UnixMilli()+1, tc{id: "s", name: "send_sms", args: map[string]any{"to": "2025550123x", "body": "Meet me at the back door"}}),
		msg("transcript", o.assistant, map[string]any{"transcript": "my card is 4111", "customer": map[string]any{"number": "+12025550123"}}),
		msg("status-update", o.assistant, map[string]any{"status": "ringing", "customer": map[string]any{"number": "+12025550123"}}),
	}
	for _, b := range bodies {
		e.handle(o.secret, b)
		e.h.Handle(context.Background(), req(b, hmacHeaders(o.secret, now.Unix(), b), now))
		e.h.Handle(context.Background(), req(b, hmacHeaders("wrong", now.Unix(), b), now))
		e.handle(def, b)
	}
	logs := e.logs.String()
	var hooks, reads, other int
	for _, l := range strings.Split(strings.TrimSpace(logs), "\n") {
		switch {
		case strings.Contains(l, `"msg":"vapi webhook"`):
			hooks++
		case strings.Contains(l, `"msg":"credential read"`) && strings.Contains(l, `"level":"DEBUG"`) &&
			strings.Contains(l, `"org_id":"`+o.id+`"`) && strings.Contains(l, `"provider":"vapi"`):
			reads++
		default:
			other++
		}
	}
	if hooks != 4*len(bodies) || other != 0 {
		t.Errorf("%d webhook log lines (and %d others) for %d webhooks, want one each", hooks, other, 4*len(bodies))
	}
	// Every webhook reads its org's secret: the first from the store, the
	// others from the cache, each with a debug line.
	if reads != 4*len(bodies) || !strings.Contains(logs, `"cache":"miss"`) || !strings.Contains(logs, `"cache":"hit"`) {
		t.Errorf("%d credential read lines for %d webhooks, want one each, hits and a miss", reads, 4*len(bodies))
	}
	for _, s := range append(personal, o.secret, def, orgTwilio.AuthToken.Reveal()) {
		if strings.Contains(logs, s) {
			t.Errorf("the log contains %q", s)
		}
	}
	for _, want := range []string{`"assistant_id":"` + o.assistant + `"`, `"org_id":"` + o.id + `"`, `"type":"tool-calls"`,
		`"outcome":"verified"`, `"outcome":"invalid_signature"`, `"duration"`, `"send_sms:sent"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("the log lacks %s", want)
		}
	}
}

// TestToolCallsRunOnceAcrossInstances: a signed tool-calls delivery that
// reaches another instance on the same database, or this one after it forgot
// the delivery, runs its tools once: the SMS goes out once, and the copies
// get a result per tool call saying the request was already handled.
func TestToolCallsRunOnceAcrossInstances(t *testing.T) {
	// A short memory: the secret-header modes carry no timestamp, so a copy
	// can come at any time after the memory expired. (While it remembers,
	// an instance answers the first results again: see TestToolCalls.)
	short := webhooks.Options{Tolerance: 25 * time.Millisecond, DedupTTL: 50 * time.Millisecond}
	a := newEnv(t, withOptions(short))
	b := newEnv(t, sharing(a))
	o := a.newOrg("replay-secret-1234567890")
	a.setTwilio(o.id, orgTwilio)
	body := toolCallsBody(t, o.assistant, time.Now().UnixMilli(),
		tc{id: "sms_1", name: "send_sms", args: map[string]any{"to": "+12025550123", "body": "Your code is 1234"}},
		tc{id: "cal_1", name: "book_appointment", args: map[string]any{"start": "2030-05-06T14:00:00Z", "end": "2030-05-06T15:00:00Z"}})
	sent := func() int { return len(a.sb.Twilio.Messages()) }
	alreadyHandled := func(t *testing.T, r []result) {
		t.Helper()
		if len(r) != 2 || r[0].ToolCallID != "sms_1" || r[0].Name != "send_sms" || r[1].ToolCallID != "cal_1" ||
			r[1].Name != "book_appointment" {
			t.Fatalf("results %+v, want one per tool call", r)
		}
		for _, x := range r {
			if !strings.Contains(x.Result, "already handled") {
				t.Errorf("result %+v, want it to say the request was already handled", x)
			}
		}
	}

	first := results(t, a.handle(o.secret, body))
	if len(first) != 2 || !strings.Contains(first[0].Result, "was sent") || sent() != 1 {
		t.Fatalf("first delivery: results %+v, %d messages; want the SMS sent", first, sent())
	}

	t.Run("another instance", func(t *testing.T) {
		alreadyHandled(t, results(t, b.handle(o.secret, body)))
		if n := b.outcome(webhooks.OutcomeDuplicate); n != 1 {
			t.Errorf("instance B counted %d duplicates, want 1", n)
		}
		if n := sent(); n != 1 {
			t.Errorf("%d messages sent, want 1", n)
		}
	})
	t.Run("the first instance after its memory is gone", func(t *testing.T) {
		a.creds.Flush()
		time.Sleep(3 * short.DedupTTL)
		alreadyHandled(t, results(t, a.handle(o.secret, body)))
		if n := sent(); n != 1 {
			t.Errorf("%d messages sent, want 1", n)
		}
	})
	t.Run("a restarted instance", func(t *testing.T) {
		c := newEnv(t, sharing(a))
		alreadyHandled(t, results(t, c.handle(o.secret, body)))
		if n := sent(); n != 1 {
			t.Errorf("%d messages sent, want 1", n)
		}
	})
	var rows int
	if err := a.db.Pool.QueryRow(context.Background(),
		`select count(*) from call_events where org_id = $1 and event_type = 'tool-calls'`, o.id).Scan(&rows); err != nil || rows != 1 {
		t.Errorf("%d tool-calls rows, %v; want the delivery claimed once", rows, err)
	}
}

// TestToolCallsUnclaimedAreNotRun: when the delivery cannot be claimed (the
// database is down), no tool runs and Vapi gets a 503 to retry; the retry
// runs the tools once.
func TestToolCallsUnclaimedAreNotRun(t *testing.T) {
	e := newEnv(t)
	o := e.newOrg("unclaimed-secret-12345678")
	e.setTwilio(o.id, orgTwilio)
	body := toolCallsBody(t, o.assistant, time.Now().UnixMilli(),
		tc{id: "sms_1", name: "send_sms", args: map[string]any{"to": "+12025550123", "body": "hello"}})
	e.events.fail.Store(true)
	got := e.handle(o.secret, body)
	if got.Status != http.StatusServiceUnavailable || errorCode(t, got) != "unavailable" {
		t.Fatalf("got %d %s, want 503 unavailable", got.Status, encode(t, got.Body))
	}
	if n := len(e.sb.Twilio.Messages()); n != 0 {
		t.Fatalf("%d messages sent without a claim", n)
	}
	e.events.fail.Store(false)
	if r := results(t, e.handle(o.secret, body)); len(r) != 1 || !strings.Contains(r[0].Result, "was sent") {
		t.Fatalf("retry: results %+v, want the SMS sent", r)
	}
	if r := results(t, e.handle(o.secret, body)); len(r) != 1 || !strings.Contains(r[0].Result, "was sent") {
		t.Fatalf("second copy: results %+v, want the first results again", r)
	}
	if n := len(e.sb.Twilio.Messages()); n != 1 {
		t.Errorf("%d messages sent, want 1", n)
	}
}
