package webhooks_test

import (
	"context"
	"strings"
	"testing"

	"byoc/app"
)

// TestToolCallRefusedByTwilioIsRecorded: credentials Twilio refuses while
// a tool sends with them are recorded as a failed check (the card needs
// attention, and the connection breaks for the alerts); Twilio being down
// records nothing, the credentials not being known to be bad.
func TestToolCallRefusedByTwilioIsRecorded(t *testing.T) {
	e := newEnv(t, func(c *envConfig) { c.providerRefusals = true })
	refused := e.newOrg("refused-twilio-secret-123")
	cfg := orgTwilio
	cfg.AuthToken = app.NewSecret("token-invalid-42")
	e.setTwilio(refused.id, cfg)
	down := e.newOrg("down-twilio-secret-98765")
	cfg = orgTwilio
	cfg.AuthToken = app.NewSecret("token-down-4242")
	e.setTwilio(down.id, cfg)

	twilioStatus := func(orgID string) app.Status {
		t.Helper()
		sts, err := e.creds.Statuses(context.Background(), orgID)
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range sts {
			if st.Provider == app.Twilio {
				return st
			}
		}
		t.Fatal("no Twilio status")
		return app.Status{}
	}
	for i, o := range []org{refused, down} {
		r := results(t, e.handle(o.secret, toolCallsBody(t, o.assistant, int64(1_900_000_100_000+i),
			tc{id: "t", name: "send_sms", args: map[string]any{"to": "+12025550123", "body": "x"}})))
		if len(r) != 1 || !strings.Contains(r[0].Result, "was not sent") {
			t.Fatalf("results %+v", r)
		}
	}
	st := twilioStatus(refused.id)
	if !st.NeedsAttention || !strings.Contains(st.VerificationError, "rejected the Account SID and Auth Token") || st.LastChecked == nil {
		t.Fatalf("status after Twilio refused the credentials in a tool call: %+v", st)
	}
	if strings.Contains(st.VerificationError, "token-invalid-42") {
		t.Fatal("the recorded reason reveals the token")
	}
	if st := twilioStatus(down.id); st.NeedsAttention || st.VerificationError != "" {
		t.Fatalf("Twilio being down was recorded as a refusal: %+v", st)
	}
}
