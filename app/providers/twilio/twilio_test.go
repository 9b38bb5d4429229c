package twilio_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"byoc/app"
	"byoc/app/apptest"
	"byoc/app/providers/twilio"
	"byoc/app/sandbox"
)

const (
	timeout = 300 * time.Millisecond
	sid     = "AC0123456789abcdef0123456789abcdef"
	token   = "f00dfeedf00dfeedf00dfeedf00dfeed"
)

func newClient(t *testing.T) (*twilio.Client, *sandbox.Sandbox) {
	t.Helper()
	sb := sandbox.New()
	srv := httptest.NewServer(sb.Handler())
	t.Cleanup(srv.Close)
	return twilio.New(sb.BaseURLs(srv.URL).Twilio, srv.Client(), timeout), sb
}

func cfg(accountSID, authToken string) app.TwilioConfig {
	return app.TwilioConfig{
		AccountSID:     accountSID,
		AuthToken:      app.NewSecret(authToken),
		PhoneNumber:    "+12025550100",
		WhatsAppNumber: "+14155238886",
	}
}

func TestVerify(t *testing.T) {
	client, _ := newClient(t)
	tests := []struct {
		name        string
		sid, token  string
		wantCode    string
		wantMessage string // substring
	}{
		{"active account", sid, token, "", ""},
		{"invalid token", sid, "invalid-" + token, app.EVerificationFailed, "rejected the Account SID and Auth Token (401 Unauthorized, error 20003)"},
		{"token echoed back transformed", sid, "echo-" + token, app.EVerificationFailed, "Twilio refused access to the account (403 Forbidden, error 20403)."},
		{"suspended account", sid, "suspended-" + token, app.EVerificationFailed, "is suspended, not active"},
		{"closed account", sid, "closed-" + token, app.EVerificationFailed, "is closed, not active"},
		{"provider down", sid, "down-" + token, app.EProviderUnavailable, "503 Service Unavailable"},
		{"rate limited", sid, "ratelimit-" + token, app.EProviderUnavailable, "429 Too Many Requests"},
		{"slow provider", sid, "slow-" + token, app.EProviderUnavailable, "timed out after 300ms"},
		{"malformed SID", "AC123", token, app.EValidation, ""},
		{"API key SID instead of Account SID", "SK0123456789abcdef0123456789abcdef", token, app.EValidation, ""},
		{"empty token", sid, "", app.EValidation, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			v, err := client.Verify(context.Background(), cfg(tt.sid, tt.token))
			if got := app.ErrorCode(err); got != tt.wantCode {
				t.Fatalf("code = %q, want %q (err %v)", got, tt.wantCode, err)
			}
			if time.Since(start) > 5*timeout {
				t.Errorf("Verify took %v", time.Since(start))
			}
			if !strings.Contains(app.ErrorMessage(err), tt.wantMessage) {
				t.Errorf("message = %q, want it to contain %q", app.ErrorMessage(err), tt.wantMessage)
			}
			apptest.AssertNoFragment(t, "the error", fmt.Sprint(err), tt.token)
			if err == nil && v.Detail != `The Twilio account "Sandbox account" is active.` {
				t.Errorf("detail = %q", v.Detail)
			}
		})
	}
}

func TestVerifyUnreachable(t *testing.T) {
	client := twilio.New(apptest.ClosedURL(t), nil, timeout)
	_, err := client.Verify(context.Background(), cfg(sid, token))
	if app.ErrorCode(err) != app.EProviderUnavailable {
		t.Fatalf("err = %v, want %s", err, app.EProviderUnavailable)
	}
	if msg := app.ErrorMessage(err); msg != "Twilio could not be reached (connection refused). Try again." {
		t.Errorf("message = %q", msg)
	}
	apptest.AssertNoSecret(t, "the error", fmt.Sprint(err), token)
}

// What Twilio says about the account is shown only without anything that
// may repeat the credentials, and an unknown status is not repeated at all.
func TestVerifyShowsNoCredentialFromTheAccount(t *testing.T) {
	tests := []struct {
		name, body  string
		wantCode    string
		wantMessage string
	}{
		{"name repeats the token", `{"status": "active", "friendly_name": "Acct ` + strings.ToUpper(token[:12]) + `"}`,
			"", `The Twilio account "Acct [redacted]" is active.`},
		{"unknown status", `{"status": "` + token + `", "friendly_name": "Acct"}`,
			app.EVerificationFailed, "The Twilio account is not active: it cannot send messages until it is reactivated in the Twilio Console."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.WriteString(w, tt.body)
			}))
			t.Cleanup(srv.Close)
			v, err := twilio.New(srv.URL, nil, timeout).Verify(context.Background(), cfg(sid, token))
			text := v.Detail
			if err != nil {
				text = app.ErrorMessage(err)
			}
			if app.ErrorCode(err) != tt.wantCode || text != tt.wantMessage {
				t.Errorf("got %q (%v), want %q", text, err, tt.wantMessage)
			}
		})
	}
}

func TestSendMessage(t *testing.T) {
	tests := []struct {
		name     string
		token    string
		msg      app.Message
		want     sandbox.TwilioMessage // SID, AccountSID, AuthToken filled in by the test
		wantCode string
		// noWhatsApp clears the org's WhatsApp number.
		noWhatsApp bool
	}{
		{
			name:  "SMS from the org's number",
			token: token,
			msg:   app.Message{To: "+447911123456", Body: "Your appointment is at 3pm."},
			want:  sandbox.TwilioMessage{From: "+12025550100", To: "+447911123456", Body: "Your appointment is at 3pm.", Channel: "sms"},
		},
		{
			name:  "SMS from an explicit number",
			token: token,
			msg:   app.Message{To: "+447911123456", From: "+12025550199", Body: "Hi", Channel: app.ChannelSMS},
			want:  sandbox.TwilioMessage{From: "+12025550199", To: "+447911123456", Body: "Hi", Channel: "sms"},
		},
		{
			name:  "WhatsApp from the org's WhatsApp number",
			token: token,
			msg:   app.Message{To: "+447911123456", Body: "Hola", Channel: app.ChannelWhatsApp},
			want:  sandbox.TwilioMessage{From: "whatsapp:+14155238886", To: "whatsapp:+447911123456", Body: "Hola", Channel: "whatsapp"},
		},
		{
			name:  "WhatsApp prefix given already is not doubled",
			token: token,
			msg:   app.Message{To: "whatsapp:+447911123456", Body: "Hola", Channel: app.ChannelWhatsApp},
			want:  sandbox.TwilioMessage{From: "whatsapp:+14155238886", To: "whatsapp:+447911123456", Body: "Hola", Channel: "whatsapp"},
		},
		{name: "empty body", token: token, msg: app.Message{To: "+447911123456"}, wantCode: app.EValidation},
		{name: "no recipient", token: token, msg: app.Message{To: " ", Body: "Hi"}, wantCode: app.EValidation},
		{name: "no WhatsApp number configured", token: token, msg: app.Message{To: "+447911123456", Body: "Hi", Channel: app.ChannelWhatsApp}, wantCode: app.EValidation, noWhatsApp: true},
		{name: "unknown channel", token: token, msg: app.Message{To: "+447911123456", Body: "Hi", Channel: "fax"}, wantCode: app.EValidation},
		{name: "Twilio refuses the number", token: token, msg: app.Message{To: "12345", Body: "Hi"}, wantCode: app.EValidation},
		{name: "invalid token", token: "invalid-" + token, msg: app.Message{To: "+447911123456", Body: "Hi"}, wantCode: app.EVerificationFailed},
		{name: "suspended account", token: "suspended-" + token, msg: app.Message{To: "+447911123456", Body: "Hi"}, wantCode: app.EVerificationFailed},
		{name: "provider down", token: "down-" + token, msg: app.Message{To: "+447911123456", Body: "Hi"}, wantCode: app.EProviderUnavailable},
		{name: "slow provider", token: "slow-" + token, msg: app.Message{To: "+447911123456", Body: "Hi"}, wantCode: app.EProviderUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client, sb := newClient(t)
			c := cfg(sid, tt.token)
			if tt.noWhatsApp {
				c.WhatsAppNumber = ""
			}
			got, err := client.SendMessage(context.Background(), c, tt.msg)
			if code := app.ErrorCode(err); code != tt.wantCode {
				t.Fatalf("code = %q, want %q (err %v)", code, tt.wantCode, err)
			}
			apptest.AssertNoFragment(t, "the error", fmt.Sprint(err), tt.token)
			sent := sb.Twilio.Messages()
			if tt.wantCode != "" {
				if len(sent) != 0 {
					t.Errorf("the stand-in recorded %+v, want nothing sent", sent)
				}
				return
			}
			want := tt.want
			want.SID, want.AccountSID, want.AuthToken = got, sid, tt.token
			if len(sent) != 1 || sent[0] != want {
				t.Errorf("sent = %+v, want [%+v]", sent, want)
			}
			if !strings.HasPrefix(got, "SM") {
				t.Errorf("SID = %q, want a message SID", got)
			}
		})
	}
}

func TestSendMessageRefusalNamesTwilioReason(t *testing.T) {
	client, _ := newClient(t)
	_, err := client.SendMessage(context.Background(), cfg(sid, token), app.Message{To: "12345", Body: "Hi"})
	want := "Twilio refused the message (400 Bad Request, error 21211): Invalid 'To' Phone Number: 12345."
	if msg := app.ErrorMessage(err); msg != want {
		t.Errorf("message = %q, want %q", msg, want)
	}
}
