package mail_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"byoc/app"
	"byoc/app/mail"
	"byoc/app/providers/resend"
	"byoc/app/sandbox"
)

func TestOutboxKeepsTheLast50NewestFirst(t *testing.T) {
	o := mail.NewOutbox(nil)
	for i := range 60 {
		if err := o.Send(context.Background(), mail.Message{To: fmt.Sprintf("u%d@example.com", i), Subject: "s"}); err != nil {
			t.Fatal(err)
		}
	}
	msgs := o.Messages()
	if len(msgs) != mail.OutboxSize || msgs[0].To != "u59@example.com" || msgs[49].To != "u10@example.com" || msgs[0].At.IsZero() {
		t.Fatalf("outbox: %d messages, first %q, last %q", len(msgs), msgs[0].To, msgs[len(msgs)-1].To)
	}
}

func TestNewChoosesTheSender(t *testing.T) {
	sb := sandbox.New()
	srv := httptest.NewServer(sb.Handler())
	t.Cleanup(srv.Close)
	client := resend.New(sb.BaseURLs(srv.URL).Resend, nil, time.Second)
	key := app.NewSecret("re_platform_0123456789")

	t.Run("the platform's key and sender: Resend", func(t *testing.T) {
		m := mail.New(mail.Options{APIKey: key, From: "BYOC <noreply@sandbox.example.com>", Client: client, Outbox: true})
		if _, ok := m.(*mail.Outbox); ok || !m.Enabled() {
			t.Fatalf("mailer %T", m)
		}
		msg := mail.PasswordResetMessage("ann@example.com", "https://byoc.example.com/reset/tok", 30*time.Minute)
		if err := m.Send(context.Background(), msg); err != nil {
			t.Fatal(err)
		}
		sent := sb.Resend.Sent()
		if len(sent) != 1 || sent[0].To[0] != "ann@example.com" || sent[0].Subject != "Reset your BYOC password" ||
			!strings.Contains(sent[0].Text, "https://byoc.example.com/reset/tok") || sent[0].Key != key.Reveal() {
			t.Fatalf("sent %+v", sent)
		}
		if strings.Contains(sent[0].Text, key.Reveal()) {
			t.Fatal("the mail holds the platform's key")
		}
	})
	t.Run("development without a key: the outbox", func(t *testing.T) {
		if _, ok := mail.New(mail.Options{Client: client, Outbox: true}).(*mail.Outbox); !ok {
			t.Fatal("no outbox")
		}
	})
	t.Run("production without a key: nothing, said plainly", func(t *testing.T) {
		m := mail.New(mail.Options{Client: client, From: "x@sandbox.example.com"})
		err := m.Send(context.Background(), mail.Message{To: "a@example.com"})
		if m.Enabled() || app.ErrorCode(err) != app.EUnavailable {
			t.Fatalf("enabled %v, err %v", m.Enabled(), err)
		}
	})
}

func TestMessages(t *testing.T) {
	exp := time.Date(2030, 1, 2, 3, 4, 0, 0, time.UTC)
	m := mail.InviteMessage("bob@example.com", "Acme", "ann@example.com", "admin", "https://byoc.example.com/invite/tok", exp)
	if m.To != "bob@example.com" || m.Subject != "You're invited to join Acme on BYOC" ||
		!strings.Contains(m.Text, "https://byoc.example.com/invite/tok") || !strings.Contains(m.Text, "as an admin") ||
		!strings.Contains(m.Text, "2 January 2030 at 03:04 UTC") {
		t.Fatalf("invitation %+v", m)
	}
}
