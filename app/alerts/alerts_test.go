package alerts_test

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"byoc/app"
	"byoc/app/alerts"
	"byoc/app/apptest"
	"byoc/app/mail"
	"byoc/db"
	"byoc/db/dbtest"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Run(m)) }

// seedOrg makes an org with the given members (e-mail to role) and
// returns its id.
func seedOrg(t *testing.T, d *db.DB, members map[string]string) string {
	t.Helper()
	org := dbtest.SeedOrg(t, "alerts")
	for email, role := range members {
		if _, err := d.Pool.Exec(context.Background(), `
			with u as (insert into users (email, password_hash) values ($1, 'x') returning id)
			insert into org_members (org_id, user_id, role) select $2, id, $3 from u`, email, org, role); err != nil {
			t.Fatal(err)
		}
	}
	return org
}

// refusing is a mailer that refuses to send to one address and keeps the
// rest in an outbox.
type refusing struct {
	*mail.Outbox
	refuse string
}

func (r refusing) Send(ctx context.Context, m mail.Message) error {
	if m.To == r.refuse {
		return app.Errorf(app.EProviderUnavailable, "Resend could not be reached.")
	}
	return r.Outbox.Send(ctx, m)
}

func TestConnectionBroke(t *testing.T) {
	d := dbtest.DB(t)
	ctx := context.Background()
	suffix := apptest.RandomHex(4)
	a, b, m := "a."+suffix+"@example.com", "b."+suffix+"@example.com", "m."+suffix+"@example.com"
	org := seedOrg(t, d, map[string]string{a: "admin", b: "admin", m: "member"})

	t.Run("every admin, even when one message fails", func(t *testing.T) {
		out := refusing{Outbox: mail.NewOutbox(time.Now), refuse: a}
		logs := &apptest.LogBuffer{}
		n := alerts.New(d, out, alerts.Options{PublicURL: "https://byoc.example/", Logger: slog.New(slog.NewJSONHandler(logs, nil))})
		n.ConnectionBroke(ctx, org, app.Twilio, "Twilio rejected the Account SID and Auth Token.")
		msgs := out.Messages()
		if len(msgs) != 1 || msgs[0].To != b {
			t.Fatalf("messages %+v, want one to %s (the other admin's failed)", msgs, b)
		}
		if msgs[0].Subject != "Your Twilio connection stopped working" ||
			!strings.Contains(msgs[0].Text, "Twilio rejected the Account SID and Auth Token.") ||
			!strings.Contains(msgs[0].Text, "https://byoc.example/dashboard/integrations") {
			t.Fatalf("message %+v", msgs[0])
		}
		if !strings.Contains(logs.String(), "break notice not sent") || !strings.Contains(logs.String(), `"sent":1`) {
			t.Fatalf("the failed message is not logged: %s", logs.String())
		}
	})
	t.Run("a server without mail sends nothing and says so", func(t *testing.T) {
		logs := &apptest.LogBuffer{}
		n := alerts.New(d, mail.New(mail.Options{}), alerts.Options{Logger: slog.New(slog.NewJSONHandler(logs, nil))})
		n.ConnectionBroke(ctx, org, app.Vapi, "Vapi rejected the API key.")
		if !strings.Contains(logs.String(), "no e-mail sent") {
			t.Fatalf("log: %s", logs.String())
		}
	})
	t.Run("no reason given still names the provider", func(t *testing.T) {
		out := mail.NewOutbox(time.Now)
		alerts.New(d, out, alerts.Options{}).ConnectionBroke(ctx, org, app.ElevenLabs, "")
		msgs := out.Messages()
		if len(msgs) != 2 || !strings.Contains(msgs[0].Text, "ElevenLabs refused the stored credentials.") {
			t.Fatalf("messages %+v", msgs)
		}
	})
}
